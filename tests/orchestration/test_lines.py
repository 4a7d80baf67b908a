"""Reading records from a byte stream: any split of the bytes gives the same records, and each
kind of trouble stays with its own line."""

from __future__ import annotations

import time

from hypothesis import given, settings, strategies as st

from dporch.orchestration.lines import MAX_LINE, LineSplitter


def read(data: bytes, fmt: str = "csv", cuts: list[int] | None = None) -> list[tuple[int, object]]:
    """(line, record) of every record, feeding ``data`` cut at ``cuts``."""
    split = LineSplitter(fmt, "test")
    out = []
    points = sorted(set(cuts or [])) + [len(data)]
    start = 0
    for p in points:
        chunk = split.feed(data[start:p])
        start = p
        if chunk:
            out += list(zip(chunk.lines, chunk.rows()))
    chunk = split.feed(b"", final=True)
    if chunk:
        out += list(zip(chunk.lines, chunk.rows()))
    assert split.offset == len(data)
    return [(line, rec if not isinstance(rec, ValueError) else ("bad", str(rec))) for line, rec in out]


GOOD = b"k,x\nA,1\nB,2\n"


def test_an_unterminated_quote_costs_one_line():
    data = b'k,x\nA,1\nB,"oops\n' + b"".join(b"C,%d\n" % i for i in range(200))
    recs = read(data)
    assert recs[0] == (2, ["A", "1"])
    assert recs[1][0] == 3 and recs[1][1][0] == "bad" and "quote" in recs[1][1][1]
    assert recs[2:] == [(4 + i, ["C", str(i)]) for i in range(200)]


def test_a_quoted_newline_is_still_one_cell():
    assert read(b'k,x\nA,"two\nlines"\nB,2\n') == [(2, ["A", "two\nlines"]), (4, ["B", "2"])]


def test_invalid_utf8_is_an_error_for_its_line_only():
    recs = read(b"k,x\nA,1\nB,\xff\xfe\nC,3\n")
    assert recs[0] == (2, ["A", "1"]) and recs[2] == (4, ["C", "3"])
    assert recs[1][0] == 3 and "not UTF-8" in recs[1][1][1] and "0xff" in recs[1][1][1]


def test_a_line_without_end_is_skipped_in_linear_time():
    sizes = {}
    for mb in (4, 16):
        split = LineSplitter("csv", "test")
        split.feed(b"k,x\n")
        t = time.perf_counter()
        for _ in range(mb * 16):
            assert split.feed(b"y" * 65536) is None
        sizes[mb] = time.perf_counter() - t
        assert split._held == 0  # nothing of it is kept
        chunk = split.feed(b"\nA,1\n")
        assert [str(r) for r in chunk.rows()][0].startswith("a line longer than")
        assert chunk.rows()[1] == ["A", "1"] and chunk.lines == [2, 3]
    assert sizes[16] < 1.0  # 16 MB of garbage: far from the seconds a quadratic copy took


def test_json_lines_deep_nesting_and_bad_lines():
    data = b'{"k":"A"}\n' + b"[" * 100_000 + b'\n{"k":"B"}\nnot json\n[1,2]\n'
    recs = read(data, "json")
    assert recs[0] == (1, {"k": "A"}) and recs[2] == (3, {"k": "B"})
    assert recs[1][1][0] == "bad" and recs[3][1][0] == "bad" and recs[4][1] == ("bad", "expected one JSON object per line")


def test_bom_crlf_blank_lines_and_a_last_line_without_newline():
    assert read(b"\xef\xbb\xbfk,x\r\n\r\nA,1\r\n\nB,2") == [(3, ["A", "1"]), (5, ["B", "2"])]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=200), max_size=8), st.sampled_from([
    GOOD, b'k,x\nA,"q,1"\nB,"x\ny"\n', b"k,x\nA,1\nB,\xff\n\nC,3", b'k,x\nA,"open\nB,2\nC,3\n',
    b"k,x\n" + b"z" * (MAX_LINE + 10) + b"\nA,1\n"]))
def test_any_split_of_the_bytes_gives_the_same_records(cuts, data):
    assert read(data, cuts=[c % (len(data) + 1) for c in cuts]) == read(data)
