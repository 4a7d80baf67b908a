"""Input/output edge cases of `dporch run` (review findings): exact quoted cells, encodings,
JSON arrays, no output on early errors, column-form fallbacks."""

from __future__ import annotations

from typer.testing import CliRunner

from dporch.cli.app import app

runner = CliRunner()


def _script(tmp_path, text):
    p = tmp_path / "s.dp"
    p.write_text(text)
    return p


def test_quoted_cells_keep_their_blanks(tmp_path):
    s = _script(tmp_path, "-- INPUT s:string, n:number --\n-- OUTPUT s, len, n --\nreturn [s, length(s), n]\n")
    data = tmp_path / "d.csv"
    data.write_text('s,n\n"  q  "," 1"\n"ab ",2\n c ,3\n')
    r = runner.invoke(app, ["run", str(s), str(data)])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == 's,len,n\n  q  ,5,\nab ,3,2\nc,1,3\n'
    assert "column n" in r.stderr  # a quoted " 1" is not a number (§4.3: no blanks)


def test_invalid_utf8_is_an_input_error(tmp_path):
    s = _script(tmp_path, "-- INPUT a --\n-- OUTPUT a --\nreturn [a]\n")
    data = tmp_path / "d.csv"
    data.write_bytes(b"a\n\xff\n")
    for extra in ([], ["--row-form"]):
        r = runner.invoke(app, ["run", str(s), str(data), *extra])
        assert r.exit_code == 2 and "not valid UTF-8" in r.stderr


def test_json_line_holding_an_array_is_skipped(tmp_path):
    s = _script(tmp_path, "-- INPUT a --\n-- OUTPUT a --\nreturn [a]\n")
    r = runner.invoke(app, ["run", str(s), "-"], input='{"a": 1}\n["x"]\n{"a": 2}\n')
    assert r.exit_code == 0 and r.stdout == "a\n1\n2\n"
    assert "line 2" in r.stderr


def test_bad_key_writes_no_output_and_no_file(tmp_path):
    s = _script(tmp_path, "-- INPUT a --\n-- OUTPUT a --\nreturn [a]\n")
    out = tmp_path / "o.csv"
    r = runner.invoke(app, ["run", str(s), "-", "--key", "zz"], input="a\n1\n")
    assert r.exit_code == 2 and r.stdout == ""
    r = runner.invoke(app, ["run", str(s), "-", "--key", "zz", "-o", str(out)], input="a\n1\n")
    assert r.exit_code == 2 and not out.exists()


def test_header_blanks_and_quotes_fall_back_to_the_row_form(tmp_path):
    s = _script(tmp_path, "-- INPUT n:number, s:string --\n-- OUTPUT n, s --\nreturn [n, s]\n")
    data = tmp_path / "d.csv"
    data.write_text(" n ,s\n1,x\n")
    r = runner.invoke(app, ["run", str(s), str(data), "--explain"])
    assert r.stdout == "n,s\n1,x\n" and "using the row form" in r.stderr
    data.write_text('n,s\n1,"abc"def\n2,y\n')
    r = runner.invoke(app, ["run", str(s), str(data)])
    assert r.stdout == "n,s\n2,y\n" and "unexpected text after a closing quote" in r.stderr
