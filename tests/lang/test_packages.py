"""Packages (§12): resolution order, lexical scope, argument-source history, errors."""

from __future__ import annotations

import textwrap

import pytest

from dporch.lang.errors import ArgumentMismatch, CheckError, PackageError, ParseError
from dporch.lang.program import compile_program

from ..conftest import run_csv

UTIL = """
package 工具包

RATE = 0.5
_SECRET = 9
LIMIT = RATE * 4

scale(x, k = 10):
    return x * k * RATE

twice(x):
    return scale(x, 2) + 工具包.scale(x, 2)

growth(data, n = 2):
    prev = data[-(n - 1)]
    return prev == null ? null : data / prev - 1

avg(data, period = 3):
    w = data[-(period - 1):0]
    vals = filter(w, v -> v != null)
    return length(vals) < period ? null : mean(vals)

smooth(data, n):
    return MA(data, n)

withdefault(a, b = a * 2):
    return b
"""


@pytest.fixture
def pkgdir(tmp_path):
    (tmp_path / "util.dp").write_text(textwrap.dedent(UTIL).lstrip(), encoding="utf-8")
    return tmp_path


def compile_in(pkgdir, src):
    path = pkgdir / "main.dp"
    path.write_text(textwrap.dedent(src).lstrip(), encoding="utf-8")
    return compile_program(path.read_text(encoding="utf-8"), str(path))


def test_members_scope_and_defaults(pkgdir):
    p = compile_in(pkgdir, """
        -- IMPORT util --
        -- INPUT x:number --
        -- OUTPUT a, b, c, d, e --
        return [util.scale(x), util.scale(x, k=1), util.twice(x), util.LIMIT, util.withdefault(3)]
    """)
    assert run_csv(p, "x\n2\n") == [[10.0, 1.0, 4.0, 2.0, 6.0]]


def test_argument_source_history(pkgdir):
    p = compile_in(pkgdir, """
        -- IMPORT util --
        -- INPUT close:number --
        -- OUTPUT g, a, s --
        return [util.growth(close), util.avg(close, 3), util.smooth(close, 2)]
    """)
    rows = run_csv(p, "close\n10\n11\n12\n15\n", key="none")
    assert rows[0] == [None, None, None]
    assert rows[1][0] == pytest.approx(0.1) and rows[1][2] == 10.5
    assert rows[2][1] == 11.0
    assert rows[3][1] == pytest.approx(38 / 3) and rows[3][2] == 13.5


def test_expression_argument_has_no_history(pkgdir):
    p = compile_in(pkgdir, """
        -- IMPORT util --
        -- INPUT close:number --
        -- OUTPUT g --
        return [util.growth(close * 1)]
    """)
    assert run_csv(p, "close\n10\n11\n", key="none") == [[None], [None]]


def test_private_member_and_arity_are_check_errors(pkgdir):
    with pytest.raises(CheckError, match="private"):
        compile_in(pkgdir, "-- IMPORT util --\n-- INPUT x --\n-- OUTPUT r --\nreturn [util._SECRET]\n")
    with pytest.raises(ArgumentMismatch, match="argument count mismatch"):
        compile_in(pkgdir, "-- IMPORT util --\n-- INPUT x --\n-- OUTPUT r --\nreturn [util.scale()]\n")
    with pytest.raises(CheckError, match="no member"):
        compile_in(pkgdir, "-- IMPORT util --\n-- INPUT x --\n-- OUTPUT r --\nreturn [util.nope]\n")


def test_package_not_found(tmp_path):
    with pytest.raises(PackageError) as e:
        compile_in(tmp_path, "-- IMPORT nothere --\n-- INPUT x --\n-- OUTPUT r --\nreturn [x]\n")
    assert "package not found: nothere" in e.value.message and e.value.line == 1


def test_search_order_packages_dir_and_dporch_path(tmp_path, monkeypatch):
    other = tmp_path / "lib"
    other.mkdir()
    (other / "extra.dp").write_text("package extra\nK = 7\n", encoding="utf-8")
    monkeypatch.setenv("DPORCH_PATH", str(other))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "packages").mkdir()
    (tmp_path / "packages" / "extra.dp").write_text("package extra\nK = 8\n", encoding="utf-8")
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    p = compile_in(scripts, "-- IMPORT extra --\n-- INPUT x --\n-- OUTPUT r --\nreturn [extra.K]\n")
    assert run_csv(p, "x\n1\n") == [[8.0]]  # ./packages/ before DPORCH_PATH
    (scripts / "extra.dp").write_text("package extra\nK = 9\n", encoding="utf-8")
    p = compile_in(scripts, "-- IMPORT extra --\n-- INPUT x --\n-- OUTPUT r --\nreturn [extra.K]\n")
    assert run_csv(p, "x\n1\n") == [[9.0]]  # the script's folder first


def test_package_errors_keep_their_kind_and_file(tmp_path):
    (tmp_path / "broken.dp").write_text("package broken\nf(x:\n", encoding="utf-8")
    with pytest.raises(ParseError) as e:
        compile_in(tmp_path, "-- IMPORT broken --\n-- INPUT x --\n-- OUTPUT r --\nreturn [x]\n")
    assert e.value.file.endswith("broken.dp")
    (tmp_path / "notpkg.dp").write_text("x = 1\n", encoding="utf-8")
    with pytest.raises(PackageError, match="not a valid package script"):
        compile_in(tmp_path, "-- IMPORT notpkg --\n-- INPUT x --\n-- OUTPUT r --\nreturn [x]\n")
    (tmp_path / "imp.dp").write_text("package imp\n-- IMPORT util --\n", encoding="utf-8")
    with pytest.raises(PackageError, match="packages cannot import"):
        compile_in(tmp_path, "-- IMPORT imp --\n-- INPUT x --\n-- OUTPUT r --\nreturn [x]\n")


def test_runtime_error_inside_package_names_the_package_file(tmp_path):
    (tmp_path / "div.dp").write_text("package div\nf(x):\n    return 1 / x\n", encoding="utf-8")
    p = compile_in(tmp_path, "-- IMPORT div --\n-- INPUT x:number --\n-- OUTPUT r --\nreturn [div.f(x)]\n")
    from dporch.lang.errors import ZeroDivision
    with pytest.raises(ZeroDivision) as e:
        run_csv(p, "x\n0\n")
    assert e.value.file.endswith("div.dp") and e.value.line == 3 and e.value.row == 0
