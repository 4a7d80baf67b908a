"""A compute unit asked for its output rows' CSV lines makes exactly the text the orchestrator's
writers would make from the columns (csv_cell per cell), for the rows that came out, in order;
the split writer, given those lines, writes the same files as without them."""

from __future__ import annotations

import pickle

import pytest

from dporch.engine.writers import SplitWriter
from dporch.lang.format import csv_cell
from dporch.orchestration.unit import ComputeUnit, decode_result, encode_batch

SCRIPT = """-- INPUT code:string, x:number, t:string --
-- OUTPUT code:string, x:number, y:number, t:string, big:number, note:string --
y = x == 0 ? null : 1 / x
big = x * 1e12
note = t == "skip" ? null : t + "，好"
if t == "drop":
    return null
return [code, x, y, t, big, note]
"""


def batch(csv_lines: bool, times: int) -> bytes:
    cols = {"code": ["a", "b", "a", "c", "b", "a"] * times,
            "x": [1.5, 0.0, -3.0, 1e-7, 2.0, float("nan")] * times,
            "t": ['q"uote', "a,b", "drop", "skip", "line\nbreak", "买入"] * times}
    return encode_batch(list(range(6 * times)), cols["code"], cols, csv_lines)


@pytest.mark.parametrize("times", [1, 20])  # 6 rows (made in Python) and 120 (through Arrow)
def test_the_units_lines_are_the_writers_text(tmp_path, times):
    unit = ComputeUnit([(SCRIPT, "lines.dp")], 10, columns=["code", "x", "t"])
    seqs, keys, columns, errors, lines = decode_result(unit._run(batch(True, times)))
    assert seqs == [s for s in range(6 * times) if s % 6 != 2] and not errors  # the "drop" rows returned null
    offsets, data = lines
    text = data.decode("utf-8")
    assert text == "".join(",".join(csv_cell(v) for v in row) + "\n" for row in zip(*columns))
    assert len(offsets) // 4 == len(seqs) + 1
    # without the flag, no lines and the same rows
    again = ComputeUnit([(SCRIPT, "lines.dp")], 10, columns=["code", "x", "t"])
    assert repr(decode_result(again._run(batch(False, times)))[:4]) == repr((seqs, keys, columns, errors))  # (NaN != NaN)
    assert pickle.loads(again._run(batch(False, times)))[4] is None
    # the split writer writes the same files from the lines as from the columns
    for name, given in (("given", lines), ("made", None)):
        w = SplitWriter(str(tmp_path / name / "{key}.csv"), unit.outputs)
        w.write_columns(columns, keys, given)
        w.close()
    for key in set(keys):
        assert (tmp_path / "given" / f"{key}.csv").read_bytes() == (tmp_path / "made" / f"{key}.csv").read_bytes()


def test_a_cell_the_unit_cannot_write_leaves_the_lines_to_the_orchestrator():
    """A value that cannot be encoded (a lone surrogate) must not fail the call (that would
    rebuild the unit again and again): the unit sends no lines, and the orchestrator's writer
    reports the cell as an output error, as it did before units made lines."""
    script = "-- INPUT code:string, t:string --\n-- OUTPUT code:string, t:string --\nreturn [code, t]\n"
    unit = ComputeUnit([(script, "s.dp")], 10, columns=["code", "t"])
    cols = {"code": ["a", "b"], "t": ["fine", "bad \ud800"]}
    seqs, keys, columns, errors, lines = decode_result(unit._run(encode_batch([0, 1], cols["code"], cols, True)))
    assert seqs == [0, 1] and lines is None and list(columns[1]) == ["fine", "bad \ud800"]


def test_units_and_orchestrators_of_the_earlier_format_still_talk():
    unit = ComputeUnit([(SCRIPT, "lines.dp")], 10, columns=["code", "x", "t"])
    old_request = pickle.dumps(pickle.loads(batch(True, 1))[:3])  # (seqs, keys, columns): no flag
    assert decode_result(unit._run(old_request))[4] is None
    old_result = pickle.dumps(pickle.loads(unit._run(batch(False, 1)))[:4])  # no lines field
    assert decode_result(old_result)[4] is None
