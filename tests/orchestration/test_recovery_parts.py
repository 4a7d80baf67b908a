"""The parts recovery is made of, on their own: the replay log, the write-ahead log, the
checkpoint store, file names from keys, cutting outputs back."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings, strategies as st

from dporch.engine.writers import safe_file_name
from dporch.orchestration.checkpoints import Checkpoint, CheckpointStore
from dporch.orchestration.outputs import cut_back
from dporch.orchestration.replay import Batch, Marker, ReplayLog
from dporch.orchestration.wal import WriteAheadLog


def batch(*seqs: int) -> Batch:
    return Batch(list(seqs), ["k"] * len(seqs), [(s,) for s in seqs])


def test_replay_log_cursors_trim_and_rewind():
    log = ReplayLog()
    b1, m1, b2, b3 = batch(0, 1), Marker(1), batch(2), batch(3, 4)
    for item in (b1, m1, b2, b3):
        log.append(item)
    assert log.rows == 5 and log.unsent == 4
    assert [log.next_unsent() for _ in range(3)] == [b1, m1, b2]
    assert log.in_flight == 3 and log.oldest_in_flight() is b1
    log.mark_done()
    log.mark_done()
    assert list(log.unhandled()) == [b2, b3] and log.outstanding == 2
    log.trim_to(1)  # checkpoint 1 committed: b1 and its marker go
    assert list(log) == [b2, b3] and log.rows == 3 and (log.sent, log.done) == (1, 0)
    log.trim_to(7)  # no such marker: nothing happens
    assert len(log) == 2
    log.rewind()  # a new actor gets everything again
    assert (log.sent, log.done) == (0, 0) and log.next_unsent() is b2


def test_replay_log_without_checkpoints_keeps_only_unhandled_items():
    log = ReplayLog()
    for item in (batch(0), batch(1), batch(2)):
        log.append(item)
    log.next_unsent()
    log.next_unsent()
    log.mark_done()
    log.drop_handled()
    assert [b.seqs for b in log] == [[1], [2]] and (log.sent, log.done) == (1, 0) and log.rows == 2


def test_wal_survives_a_torn_frame_and_drops_what_a_checkpoint_covers(tmp_path):
    wal = WriteAheadLog(tmp_path)
    assert [wal.append({"n": i}) for i in range(3)] == [0, 1, 2]
    wal.checkpointed(0)  # new segment from now on
    wal.append({"n": 3})
    wal.close()
    segs = sorted(tmp_path.glob("*.wal"))
    assert [s.stem for s in segs] == ["0000000000000000", "0000000000000003"]
    with open(segs[-1], "ab") as f:  # a crash in the middle of the next frame
        f.write(b"\x40\x00\x00\x00abc")
    wal = WriteAheadLog(tmp_path)
    assert wal.next_id == 4
    assert [r for r, _ in wal.records(2)] == [2, 3]
    assert [r for r, _ in wal.records(3, {1})] == [1, 3]
    assert wal.append({"n": 4}) == 4
    assert [o["n"] for _, o in wal.records(0)] == [0, 1, 2, 3, 4]
    wal.checkpointed(3)  # records 0..2 are covered: their segment goes
    assert [r for r, _ in wal.records(0)] == [3, 4]


def test_checkpoint_store_commits_whole_checkpoints(tmp_path):
    store = CheckpointStore(tmp_path / "c.sqlite")
    assert store.latest("t") is None and store.slot_states("t", "u1") == (None, {})
    ck1 = Checkpoint(1, "fp", 10, ["u1", "u2"], outputs={"a.csv": 5})
    store.commit("t", ck1, {"u1": ({"A": b"a1", None: b"n1"}, []), "u2": ({"B": b"b1"}, [])}, full=True)
    assert store.slot_states("t", "u1") == (1, {"A": b"a1", None: b"n1"})
    ck2 = Checkpoint(2, "fp", 20, ["u1"])  # u2 is gone (scaled down), A changed, the null key dropped

    class Boom(dict):
        def items(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        store.commit("t", ck2, {"u1": (Boom(A=b"x"), [])})
    assert store.latest("t").id == 1 and store.slot_states("t", "u2") == (1, {"B": b"b1"})  # untouched
    store.commit("t", ck2, {"u1": ({"A": b"a2"}, [None])})
    assert store.latest("t") == ck2
    assert store.slot_states("t", "u1") == (2, {"A": b"a2"}) and store.slot_states("t", "u2") == (2, {})
    store.note_output("t", "a.csv", -1)
    store.note_output("t", "a.csv", 99)  # the first note stays
    assert store.output_bases("t") == {"a.csv": -1}
    store.close()
    reopened = CheckpointStore(tmp_path / "c.sqlite")
    assert reopened.latest("t").next_seq == 20
    reopened.clear("t")
    assert reopened.latest("t") is None and reopened.output_bases("t") == {}


def test_cut_back_truncates_removes_and_leaves_shorter_files_alone(tmp_path):
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    a.write_text("h\n1\n2\n")
    b.write_text("h\n")
    c.write_text("h\n")
    changed = cut_back({str(a): 4, str(b): -1, str(c): 10, str(tmp_path / "gone.csv"): 3})
    assert sorted(changed) == sorted([str(a), str(b)])
    assert a.read_text() == "h\n1\n" and not b.exists() and c.read_text() == "h\n"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=300)), min_size=2, max_size=6, unique=True))
def test_key_file_names_are_safe_and_distinct(values):
    keys = {None if v in (None, "") else v for v in values}
    names = {safe_file_name(k) for k in keys}
    assert len(names) == len(keys)
    for name in names:
        assert "/" not in name and "\x00" not in name and name not in (".", "..")
        assert len(name.encode("utf-8")) <= 120
        name.encode("utf-8")  # no lone surrogate reaches the file system


def test_key_file_names_are_readable():
    assert [safe_file_name(k) for k in ("600519", "中文", None, "..", "a/b", "_")] == \
        ["600519", "中文", "_", "%2E%2E", "a%2Fb", "%5F"]
    long = safe_file_name("x" * 300)
    assert len(long) == 120 and long.startswith("x" * 100) and long != safe_file_name("x" * 301)
    assert os.sep not in safe_file_name(os.sep)
