"""The project's own documentation: nothing outside the repository is cited (a user's clone has
only the repository), every relative link and anchor resolves, and the facts docs/language.md
states with examples hold when the examples run."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import dporch

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CITATION = re.compile(r"\.\./shared|/work/shared|seed\s*§|SEED_DESIGN|(?<!docs/)(?:DPLANG|ARCHITECTURE)\.md", re.I)

#: Lines allowed to cite documents outside the repository: none.
KNOWN_CITATIONS: dict[str, set[str]] = {}


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [f for f in out.splitlines() if not f.startswith("tests/") and (ROOT / f).is_file()]


def test_no_tracked_file_cites_documents_outside_the_repository():
    found: dict[str, set[str]] = {}
    for name in tracked_files():
        try:
            text = (ROOT / name).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for line in text.splitlines():
            if CITATION.search(line):
                found.setdefault(name, set()).add(line.strip())
    unexpected = {f: lines - KNOWN_CITATIONS.get(f, set()) for f, lines in found.items()}
    assert {f: lines for f, lines in unexpected.items() if lines} == {}


def test_the_language_and_orchestration_guides_are_the_projects_own():
    for name in ("language.md", "orchestration.md"):
        text = (DOCS / name).read_text(encoding="utf-8")
        for phrase in ("[REC]", "[BUG]", "[DOC]", "[old]", "v0.4", "the spec", "the seed", "Rust", "original",
                       "DPLANG.md", "observed"):
            assert phrase.lower() not in text.lower(), (name, phrase)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("doc", ["README.md", "docs/language.md", "docs/orchestration.md", "docs/backtest.md",
                                 "docs/monitoring.md", "docs/architecture.md", "docs/api.md",
                                 "docs/scaling.md"])
def test_relative_links_and_anchors_resolve(doc):
    path = ROOT / doc
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans: `arr[0](1)` is no link
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        assert dest.is_file() and ROOT in dest.parents, (doc, target)
        if anchor and dest.suffix == ".md":
            assert anchor in anchors(dest), (doc, target)


def test_readme_points_to_the_guides():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/language.md)" in text and "(docs/orchestration.md)" in text and "(docs/api.md)" in text


# -- docs/language.md's facts, run -------------------------------------------------------------------
LANGUAGE = (DOCS / "language.md").read_text(encoding="utf-8")


def run(source: str, rows: list[dict]) -> list[dict]:
    return dporch.compile(source).run(rows, key="none")


def section(title: str) -> str:
    """The text of one section, up to the next heading."""
    start = LANGUAGE.index(title)
    end = re.compile(r"\n#{1,3} ").search(LANGUAGE, start + len(title))
    return LANGUAGE[start: end.start() if end else None]


def test_the_worked_history_example_of_section_8_5():
    table = re.findall(r"^\| (.+?) \| (.+?) \|$", section("### 8.5 Worked example"), re.M)
    checked = 0
    for exprs_cell, values_cell in table[1:]:  # the header row first
        row = 0 if exprs_cell.startswith("at row 0") else 2
        exprs = re.findall(r"`([^`]+)`", exprs_cell)
        values = [v.strip() for v in re.split(r",\s(?![^\[]*\])", values_cell)]
        if len(values) == 1:
            values *= len(exprs)
        for expr, want in zip(exprs, values):
            source = ("-- INPUT close:number --\n-- OUTPUT ma:number, r:string --\n"
                      f"ma = close * 2\ntmp = close + 1\nr = string({expr})\nreturn [ma, r]\n")
            out = run(source, [{"close": c} for c in (10, 11, 12, 13, 14)])
            got = out[row]["r"]
            assert ("null" if got is None else got) == want.strip("`"), (expr, got, want)  # string(null) is null
            checked += 1
    assert checked == 16


def test_the_error_block_example():
    source = re.search(r"```text\n(-- INPUT x:number --\n-- OUTPUT r:number --\n-- ERROR --.*?)```",
                       LANGUAGE, re.S).group(1)
    assert [r["r"] for r in run(source, [{"x": 2}, {"x": 0}, {"x": 5}])] == [5, 0, 2]


def test_the_opening_example_and_the_pipeline_example():
    source = re.search(r"```text\n(-- INPUT code:string.*?)```", LANGUAGE, re.S).group(1)
    out = run(source, [{"code": "000001", "close": c} for c in (10, 11, 12, 13, 14, 15, 9)])
    assert [r["ma5"] for r in out] == [None, None, None, None, 12, 13, 12.6]
    assert [r["signal"] for r in out] == ["观望"] * 4 + ["持有", "买入", "卖出"]
    source = re.search(r"```text\n(-- INPUT prices:array --.*?)```", LANGUAGE, re.S).group(1)
    assert run(source, [{"prices": "[90; 120; 150]"}]) == [{"total": 70}]


def test_the_package_example(tmp_path, monkeypatch):
    package, script = re.findall(r"```text\n(# packages/util\.dp.*?|-- INPUT stock_code:string, close:number --\n-- IMPORT util.*?)```",
                                 LANGUAGE, re.S)
    (tmp_path / "util.dp").write_text(package.split("\n", 1)[1], encoding="utf-8")
    (tmp_path / "s.dp").write_text(script, encoding="utf-8")
    out = dporch.compile(str(tmp_path / "s.dp")).run(
        [{"stock_code": "A", "close": 10}, {"stock_code": "B", "close": 20}, {"stock_code": "A", "close": 11}])
    assert out == [{"stock_code": "A", "a": 30, "b": 20, "p": None}, {"stock_code": "B", "a": 60, "b": 40, "p": None},
                   {"stock_code": "A", "a": 33, "b": 22, "p": 10}]
