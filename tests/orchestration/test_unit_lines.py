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
