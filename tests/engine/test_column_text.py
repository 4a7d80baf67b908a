"""The column form's CSV text (engine/arrow_io.py) is exactly the row form's: every cell as
``csv_cell`` gives it, nulls empty, one line per row; also at the edges of the range where Arrow's
number texts are used as they are."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest

from dporch.engine import arrow_io
from dporch.lang.format import csv_cell
from dporch.lang.vector_values import Bool, Num, Str


def expected(columns: list[list]) -> bytes:
    return "".join(",".join(csv_cell(v) for v in row) + "\n" for row in zip(*columns)).encode()


def as_col(values: list):
    null = np.array([v is None for v in values], dtype=bool)
    if all(isinstance(v, float) or v is None for v in values):
        return Num(np.array([0.0 if v is None else v for v in values]), null if null.any() else None)
    if all(isinstance(v, bool) or v is None for v in values):
        return Bool(np.array([bool(v) for v in values]), null if null.any() else None)
    cats = sorted({v for v in values if v is not None})
    codes = np.array([0 if v is None else cats.index(v) for v in values], dtype=np.int32)
    return Str(codes, cats, null if null.any() else None)


def written(columns: list[list], **kw) -> bytes:
    out = io.BytesIO()
    arrow_io.write_csv_rows([as_col(c) for c in columns], len(columns[0]), out, **kw)
    return out.getvalue()


def edge_numbers() -> list[float | None]:
    rng = random.Random(13)
    values: list[float | None] = [0.0, -0.0, float("nan"), float("inf"), float("-inf"), None, 1.0, -1.0, 0.1 + 0.2]
    for k in range(-12, 25):  # around every power of ten, the range edges (1e-5, 1e9) and Arrow's (1e-6, 1e10)
        p = 10.0 ** k
        values += [p, -p, np.nextafter(p, 0.0), np.nextafter(p, np.inf), p * 1.2345678901234567]
    values += [rng.uniform(-1e6, 1e6) for _ in range(300)] + [round(rng.uniform(1, 100), 2) for _ in range(300)]
    values += [rng.random() * 10 ** rng.randint(-30, 30) for _ in range(300)]
    return [None if v is None else float(v) for v in values]


def test_number_cells_match_csv_cell_in_every_range():
    nums = edge_numbers()
    other = [float(i) for i in range(len(nums))]
    assert written([nums, other]) == expected([nums, other])
    assert written([other, nums]) == expected([other, nums])  # nulls and odd cells in the last column
    assert written([nums]) == expected([nums])


def test_strings_bools_and_nulls_in_any_position():
    n = 200
    rng = random.Random(5)
    words = ["plain", "a,b", 'q"uote', "line\nbreak", "", "中文", None]
    s = [rng.choice(words) for _ in range(n)]
    b = [rng.choice([True, False, None]) for _ in range(n)]
    x = [rng.choice([1.5, None, 1e22, 2.0]) for _ in range(n)]
    for cols in ([s, b, x], [x, s, b], [b, x, s], [s], [b]):
        assert written(cols) == expected(cols)


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 17])
def test_chunks_and_threads_keep_the_order(chunk):
    nums = edge_numbers()
    words = [f"k{i % 17}" for i in range(len(nums))]
    assert written([words, nums], chunk=chunk, threads=2) == expected([words, nums])
