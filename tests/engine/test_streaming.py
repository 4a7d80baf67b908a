"""StreamingExecutor: parity with batch runs, bounded windows, skipped failing rows, retry,
state export/import, columnar batches (issue: streaming executor)."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import talib

from dporch.engine.streaming import StateMismatch, StreamingExecutor
from dporch.lang.errors import ScriptExit

from ..conftest import compile_src, run_csv

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = (ROOT / "data" / "sample_ticks.csv").read_text()


def sample_rows() -> list[dict]:
    return list(csv.DictReader(io.StringIO(SAMPLE)))


@pytest.mark.parametrize("script", ["momentum.dp", "window.dp", "indicators.dp", "ma_cross.dp"])
def test_push_matches_batch_run(script):
    program = compile_src((ROOT / "workflows" / script).read_text(), file=script)
    expected = run_csv(program, SAMPLE)
    ex = StreamingExecutor(program, window_size=1000)
    got = [list(out.values()) for r in sample_rows() if (out := ex.push(r)) is not None]
    assert got == expected
    assert ex.stats()["keys"] == 5 and ex.stats()["rows_in"] == 300


def test_push_many_dataframe_arrow_and_dicts_match_push():
    program = compile_src((ROOT / "workflows" / "indicators.dp").read_text())
    rows = sample_rows()
    one = StreamingExecutor(program)
    expected = [list(o.values()) for r in rows if (o := one.push(r)) is not None]
    frame = pd.read_csv(io.StringIO(SAMPLE), dtype={"stock_code": str})
    for batch in (frame, pa.RecordBatch.from_pandas(frame, preserve_index=False), rows):
        ex = StreamingExecutor(program)
        got = []
        for start in range(0, len(rows), 64):
            part = batch[start:start + 64] if not isinstance(batch, pa.RecordBatch) else batch.slice(start, 64)
            got += ex.push_many(part).rows
        assert got == expected


def test_window_bounds_history_and_memory():
    src = """
        -- INPUT k:string, x:number --
        -- OUTPUT back3, all --
        return [x[-3], x[:0]]
    """
    ex = StreamingExecutor(compile_src(src), window_size=2, key="k")
    outs = [ex.push({"k": "A", "x": float(i)}) for i in range(6)]
    assert [o["back3"] for o in outs] == [None] * 6  # 3 rows back is beyond a window of 2
    assert outs[-1]["all"] == [3.0, 4.0, 5.0]  # the 2 retained rows and the current one
    buffers = ex._streams["A"].h
    assert all(len(b) <= 2 for b in buffers.values())


def test_indicator_value_is_over_whole_history_not_the_window():
    src = "-- INPUT x:number --\n-- OUTPUT m --\nreturn [MA(x, 10)]\n"
    ex = StreamingExecutor(compile_src(src), window_size=2, key=None)
    outs = [ex.push({"x": float(i)})["m"] for i in range(12)]
    assert outs[9] == 4.5 and outs[11] == 6.5


def test_failing_row_is_skipped_without_trace():
    src = """
        -- INPUT k:string, x:number --
        -- OUTPUT x, prev, idx, m --
        y = 10 / x
        return [x, x[-1], _index, MA(x, 2)]
    """
    errors = []
    ex = StreamingExecutor(compile_src(src), key="k", on_error=errors.append)
    out = [ex.push({"k": k, "x": x}) for k, x in [("A", 1.0), ("B", 5.0), ("A", 0.0), ("A", 3.0), ("B", 6.0)]]
    assert out[2] is None
    assert out[3] == {"x": 3.0, "prev": 1.0, "idx": 1.0, "m": 2.0}  # the failed row left no record
    assert out[4] == {"x": 6.0, "prev": 5.0, "idx": 1.0, "m": 5.5}
    [err] = errors
    assert (err.kind, err.row, err.key, err.line) == ("ZeroDivision", 2, "A", 3)
    assert ex.stats()["errors"] == 1


def test_bad_input_values_are_reported_and_skipped():
    ex = StreamingExecutor(compile_src("-- INPUT x:number --\n-- OUTPUT y --\nreturn [x[-1]]\n"), key=None)
    assert ex.push({"x": "1.5"}) == {"y": None}
    assert ex.push({"x": "abc"}) is None
    assert ex.push({"x": 2.0}) == {"y": 1.5}
    assert ex.recent_errors[-1].kind == "InputError" and "column x" in ex.recent_errors[-1].message


def test_retry_hook_reruns_the_row():
    calls = []

    def retry(err, attempt):
        calls.append((err.kind, attempt))
        return attempt < 3

    ex = StreamingExecutor(compile_src("-- INPUT x:number --\n-- OUTPUT y --\nreturn [1 / x]\n"), key=None, retry=retry)
    assert ex.push({"x": 0.0}) is None
    assert calls == [("ZeroDivision", 1), ("ZeroDivision", 2), ("ZeroDivision", 3)]
    assert ex.recent_errors[-1].attempts == 3


def test_error_block_and_exit_in_streaming_mode():
    src = """
        -- INPUT x:number --
        -- OUTPUT y --
        -- ERROR --
        return [-1]
        -- ERROR_END --
        if x < 0:
            exit("stop")
        return [10 / x]
    """
    ex = StreamingExecutor(compile_src(src), key=None)
    assert ex.push({"x": 0.0}) == {"y": -1.0}
    with pytest.raises(ScriptExit):
        ex.push({"x": -1.0})


def test_total_and_lookahead_are_null_in_streaming_mode():
    ex = StreamingExecutor(compile_src("-- INPUT x:number --\n-- OUTPUT t, n --\nreturn [_total, x[1]]\n"), key=None)
    assert ex.push({"x": 1.0}) == {"t": None, "n": None}


def test_export_import_round_trip_is_exact():
    program = compile_src((ROOT / "workflows" / "indicators.dp").read_text())
    rows = sample_rows()
    whole = StreamingExecutor(program, window_size=30)
    expected = [whole.push(r) for r in rows]
    first = StreamingExecutor(program, window_size=30)
    got = [first.push(r) for r in rows[:137]]
    data = first.export_state()
    second = StreamingExecutor(program, window_size=30)
    assert sorted(second.import_state(data)) == sorted(first.keys)
    got += [second.push(r) for r in rows[137:]]
    assert got == expected


def test_moving_some_keys_between_executors():
    program = compile_src((ROOT / "workflows" / "ma_cross.dp").read_text())
    rows = sample_rows()
    whole = StreamingExecutor(program)
    expected = [whole.push(r) for r in rows]
    a, b = StreamingExecutor(program), StreamingExecutor(program)
    got = [a.push(r) for r in rows[:100]]
    moving = ["000000", "600001"]
    b.import_state(a.export_state(moving))
    a.drop_keys(moving)
    got += [(b if r["stock_code"] in moving else a).push(r) for r in rows[100:]]
    assert got == expected


def test_import_refuses_state_of_another_script():
    a = StreamingExecutor(compile_src("-- INPUT x:number --\n-- OUTPUT y --\nreturn [x[-1]]\n"), key=None)
    a.push({"x": 1.0})
    b = StreamingExecutor(compile_src("-- INPUT x:number --\n-- OUTPUT y --\nreturn [x[-2]]\n"), key=None)
    b.bind(["x"])
    with pytest.raises(StateMismatch):
        b.import_state(a.export_state())


def test_reset_forgets_streams():
    ex = StreamingExecutor(compile_src("-- INPUT x:number --\n-- OUTPUT y --\nreturn [x[-1]]\n"), key=None)
    ex.push({"x": 1.0})
    ex.reset()
    assert ex.push({"x": 2.0}) == {"y": None}


# -- indicators on computed series -------------------------------------------------------------

def _walk(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(20 + np.cumsum(rng.normal(0, 0.3, n)), 2)


def _expect(values: np.ndarray) -> list:
    return [None if np.isnan(v) else float(v) for v in values]


def test_indicator_of_a_computed_variable_matches_recomputation():
    close = _walk(400, 1)
    src = """
        -- INPUT x:number --
        -- OUTPUT ma5, mm, dif, dea --
        ma5 = MA(x, 5)
        mm = MA(ma5, 3)
        spread = x - ma5
        [dif, dea, bar] = MACD(spread, 6, 13, 4)
        return [ma5, mm, dif, dea]
    """
    ex = StreamingExecutor(compile_src(src), key=None)
    outs = [ex.push({"x": float(c)}) for c in close]
    ma5 = talib.SMA(close, 5)
    valid = ~np.isnan(ma5)
    mm = np.full(len(close), np.nan)
    mm[valid] = talib.SMA(ma5[valid], 3)
    spread = close - ma5
    dif, dea = np.full(len(close), np.nan), np.full(len(close), np.nan)
    d, s, _ = talib.MACD(spread[valid], 6, 13, 4)
    dif[valid], dea[valid] = d, s
    assert [o["ma5"] for o in outs] == _expect(ma5)
    assert [o["mm"] for o in outs] == _expect(mm)
    assert [o["dif"] for o in outs] == _expect(dif)
    assert [o["dea"] for o in outs] == _expect(dea)


def test_indicator_inside_a_branch_still_sees_every_row():
    close = _walk(60, 2)
    src = """
        -- INPUT x:number --
        -- OUTPUT m --
        if _index % 3 == 0:
            return [MA(x, 4)]
        return null
    """
    ex = StreamingExecutor(compile_src(src), key=None)
    outs = [o["m"] for c in close if (o := ex.push({"x": float(c)})) is not None]
    assert outs == _expect(talib.SMA(close, 4))[::3]


def test_random_interleaved_keys_match_batch():
    rng = random.Random(5)
    lines = ["k,x"]
    for _ in range(500):
        v = "" if rng.random() < 0.05 else f"{rng.uniform(1, 100):.2f}"
        lines.append(f"{rng.choice('ABCD')},{v}")
    data = "\n".join(lines) + "\n"
    src = """
        -- INPUT k:string, x:number --
        -- OUTPUT k, e, r, d, w --
        e = EMA(x, 5)
        r = RSI(x, 6)
        d = x - x[-2]
        w = sum(x[-3:0])
        return [k, e, r, d, w]
    """
    program = compile_src(src)
    expected = run_csv(program, data, key="k")
    ex = StreamingExecutor(program, key="k")
    got = [list(o.values()) for row in csv.DictReader(io.StringIO(data)) if (o := ex.push(row)) is not None]
    assert got == expected
