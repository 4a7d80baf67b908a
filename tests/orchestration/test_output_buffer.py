"""The output ring (fetch_output's rows): after any sequence of blocks it holds exactly the last
``maxlen`` rows, and pages of it are those rows, whatever the block sizes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dporch.orchestration.outputs import OutputBuffer


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(0, 25), max_size=12), maxlen=st.integers(1, 30),
       offset=st.integers(0, 35), limit=st.integers(1, 35))
def test_the_ring_holds_the_last_rows(sizes, maxlen, offset, limit):
    buf = OutputBuffer(["n", "sq"], maxlen=maxlen)
    rows: list[int] = []
    for size in sizes:
        block = list(range(len(rows), len(rows) + size))
        rows += block
        buf.add([block, [v * v for v in block]])
    kept = rows[-maxlen:] if rows else []
    assert buf.held == len(kept) and buf.total == len(rows) and buf.first_index == len(rows) - len(kept)
    assert buf.page(offset, limit) == [{"n": v, "sq": v * v} for v in kept[offset:offset + limit]]
