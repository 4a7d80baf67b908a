"""The writers' block path (Arrow, for blocks of >= 256 rows once Arrow is worth loading) writes
exactly what the per-cell path writes: every cell as ``csv_cell``, rows in arrival order in the
merged output and in each split file."""

from __future__ import annotations

import io
import random

import pytest

from dporch.engine import writers
from dporch.engine.writers import RowWriter, SplitWriter
from dporch.lang.format import csv_cell, csv_header

COLUMNS = ["code", "x", "y", "s", "b"]


def rows(n: int, seed: int = 3) -> tuple[list[list], list]:
    rng = random.Random(seed)
    words = ["plain", "a,b", 'q"uote', "line\nbreak", "", "买入", "卖出", None]
    numbers = [None, 0.0, -0.0, 1e22, 1e-7, 12345678901.5, float("nan"), float("inf"), 2.5, 0.1 + 0.2]
    out, keys = [], []
    for i in range(n):
        x = rng.choice(numbers) if i % 7 == 0 else round(rng.uniform(1, 100), 2)
        y = rng.uniform(-1e6, 1e6) if i % 11 else rng.choice([None, "text", True, [1.0, "a"]])  # mixed column
        key = rng.choice(["000001", "600001", None, "a/b", "x"])
        out.append([key, x, y, rng.choice(words), rng.choice([True, False, None])])
        keys.append(key)
    return out, keys


def text(block: list[list]) -> str:
    return "".join(",".join(csv_cell(v) for v in r) + "\n" for r in block)


@pytest.fixture
def arrow_now(monkeypatch):
    monkeypatch.setattr(writers, "_repr_cells", writers._REPR_BUDGET)


@pytest.mark.parametrize("n", [300, 2048])
def test_row_writer_blocks(arrow_now, n):
    block, _ = rows(n)
    out = io.StringIO()
    w = RowWriter(out, COLUMNS)
    w.write_rows(block[:100])  # a small block (per cell), then a large one (Arrow)
    w.write_rows(block[100:])
    w.close()
    assert out.getvalue() == csv_header(COLUMNS) + text(block)


def test_split_writer_blocks_keep_each_files_order(arrow_now, tmp_path):
    block, keys = rows(3000, seed=9)
    w = SplitWriter(str(tmp_path / "{key}.csv"), COLUMNS, buffer_rows=700)
    for start in range(0, len(block), 1000):
        w.write_rows(block[start:start + 1000], keys[start:start + 1000])
    w.close()
    for key in set(keys):
        path = w.path_for(key)
        expected = text([r for r, k in zip(block, keys) if k == key])
        assert open(path, encoding="utf-8", newline="").read() == csv_header(COLUMNS) + expected, key


@pytest.mark.parametrize("template", ["{key}/{b}.csv", "{b}.csv"])
@pytest.mark.parametrize("arrow", [True, False])
def test_split_writer_with_a_path_column(monkeypatch, tmp_path, template, arrow):
    """A path naming a row column, with or without the key: each file gets its rows in arrival
    order, also when rows of several keys share it ("{b}.csv"), by the block and the line path."""
    if arrow:
        monkeypatch.setattr(writers, "_repr_cells", writers._REPR_BUDGET)
    else:
        monkeypatch.setattr(writers, "_use_arrow", lambda n, cells=None: False)
    block, keys = rows(900, seed=4)
    w = SplitWriter(str(tmp_path / template), COLUMNS)
    for start in range(0, len(block), 300):
        w.write_rows(block[start:start + 300], keys[start:start + 300])
    w.close()
    expected: dict[str, list] = {}
    for r, k in zip(block, keys):
        expected.setdefault(w.path_for(k, {"b": r[4]}), []).append(r)
    assert set(expected) == w.touched
    for path, part in expected.items():
        assert open(path, encoding="utf-8", newline="").read() == csv_header(COLUMNS) + text(part)


def test_split_writer_files_follow_the_values_not_their_equality(tmp_path):
    """Values equal in Python but written differently name different files (True, 1, 1.0;
    0.0 and -0.0); a block holding an unhashable value sends the others where they always go;
    all NaNs share one file."""
    w = SplitWriter(str(tmp_path / "{v}.csv"), ["v", "n"])
    values = [True, 1, 1.0, 0.0, -0.0, float("nan"), float("nan"), "a", None]
    w.write_rows([[v, i] for i, v in enumerate(values)], ["k"] * len(values))
    w.write_rows([["a", 9], [[1, 2], 10], [None, 11]], ["k"] * 3)  # a list in the block
    w.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["True.csv", "1.csv", "1.0.csv", "0.0.csv", "-0.0.csv", "nan.csv", "a.csv", "_.csv",
                            w.path_for("k", {"v": [1, 2]}).rsplit("/", 1)[-1]])
    assert (tmp_path / "a.csv").read_text().splitlines() == ["v,n", "a,7", "a,9"]
    assert (tmp_path / "_.csv").read_text().splitlines() == ["v,n", ",8", ",11"]
    assert (tmp_path / "nan.csv").read_text().splitlines() == ["v,n", "NaN,5", "NaN,6"]
