"""The checkpoint store (运行时状态快照): per task, the last committed checkpoint and
the window state of every key of every compute unit, in SQLite under the state directory.

A checkpoint is committed in one transaction: the keys whose state changed since the previous
one are written, dropped keys deleted, and the checkpoint record replaced. A crash at any
moment leaves the previous checkpoint whole. The store also remembers, for every output file a
task has touched, its size before the task first wrote to it, so a restart can cut a file
back to where the checkpoint left it even if the file was first touched after it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .unit import KeyStates

__all__ = ["Checkpoint", "CheckpointStore", "SlotChanges"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoint (task TEXT PRIMARY KEY, id INTEGER NOT NULL, meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS unit_state (
    task TEXT NOT NULL, slot TEXT NOT NULL, key TEXT NOT NULL, state BLOB NOT NULL,
    PRIMARY KEY (task, slot, key));
CREATE TABLE IF NOT EXISTS output_file (
    task TEXT NOT NULL, path TEXT NOT NULL, base INTEGER NOT NULL, PRIMARY KEY (task, path));
CREATE TABLE IF NOT EXISTS completion (task TEXT PRIMARY KEY, meta TEXT NOT NULL);
"""

#: slot -> (states of the keys that changed, keys dropped)
SlotChanges = dict[str, tuple[KeyStates, list[Any]]]


@dataclass
class Checkpoint:
    """What a committed checkpoint covers."""

    id: int
    fingerprint: str  # of the scripts, schema, routing and window: state is only valid for these
    next_seq: int  # rows numbered below this are in the state (or were dropped as bad rows)
    slots: list[str]  # the compute units, by slot
    router: dict[str, Any] = field(default_factory=dict)
    input: dict[str, Any] = field(default_factory=dict)  # file inputs: offset, line, header
    wal: dict[str, Any] = field(default_factory=dict)  # durable inputs: next record, pending ones
    outputs: dict[str, int] = field(default_factory=dict)  # output file -> size in bytes
    counters: dict[str, int] = field(default_factory=dict)
    retries: list[list[Any]] = field(default_factory=list)  # [seq, key, row, attempt] to try again
    created: float = field(default_factory=time.time)


def _key(k: Any) -> str:
    return json.dumps(k, ensure_ascii=False)


class CheckpointStore:
    """``path=None`` keeps everything in memory (a server without a state directory still
    recovers from a lost worker, just not from its own restart)."""

    def __init__(self, path: Path | None = None):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path) if path else ":memory:", isolation_level=None,
                                   check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            if path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def latest(self, task: str) -> Checkpoint | None:
        with self._lock:
            row = self._db.execute("SELECT meta FROM checkpoint WHERE task = ?", (task,)).fetchone()
        return Checkpoint(**json.loads(row[0])) if row else None

    def slot_states(self, task: str, slot: str) -> tuple[int | None, KeyStates]:
        """The committed state of one unit, and the checkpoint it belongs to (read together)."""
        with self._lock:  # the only writer holds it too
            row = self._db.execute("SELECT id FROM checkpoint WHERE task = ?", (task,)).fetchone()
            states = {json.loads(k): bytes(s) for k, s in self._db.execute(
                "SELECT key, state FROM unit_state WHERE task = ? AND slot = ?", (task, slot))}
        return (row[0] if row else None), states

    def commit(self, task: str, ckpt: Checkpoint, changes: SlotChanges, *, full: bool = False) -> int:
        """Write one checkpoint atomically; ``full``: ``changes`` hold every key (older rows of
        the task are dropped). Returns the bytes of state written."""
        size = 0
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                if full:
                    db.execute("DELETE FROM unit_state WHERE task = ?", (task,))
                else:
                    marks = ",".join("?" * len(ckpt.slots))
                    db.execute(f"DELETE FROM unit_state WHERE task = ? AND slot NOT IN ({marks})", (task, *ckpt.slots))
                for slot, (states, dropped) in changes.items():
                    if dropped:
                        db.executemany("DELETE FROM unit_state WHERE task = ? AND slot = ? AND key = ?",
                                       [(task, slot, _key(k)) for k in dropped])
                    if states:
                        size += sum(map(len, states.values()))
                        db.executemany("INSERT OR REPLACE INTO unit_state (task, slot, key, state) VALUES (?, ?, ?, ?)",
                                       [(task, slot, _key(k), v) for k, v in states.items()])
                db.execute("INSERT OR REPLACE INTO checkpoint (task, id, meta) VALUES (?, ?, ?)",
                           (task, ckpt.id, json.dumps(asdict(ckpt), ensure_ascii=False)))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return size

    def clear(self, task: str) -> None:
        """Forget the task's checkpoint, state and output notes (a fresh start); its completion
        record stays (a deleted task drops it with :meth:`forget_completion`)."""
        with self._lock:
            for table in ("checkpoint", "unit_state", "output_file"):
                self._db.execute(f"DELETE FROM {table} WHERE task = ?", (task,))

    def note_output(self, task: str, path: str, base: int) -> None:
        """``path``'s size before the task first wrote to it (-1: it did not exist); kept from
        the first note until the task is cleared."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO output_file (task, path, base) VALUES (?, ?, ?)",
                             (task, path, base))

    def completed(self, task: str) -> dict[str, Any] | None:
        """What the task's last finished run recorded (see workflow.py), or None."""
        with self._lock:
            row = self._db.execute("SELECT meta FROM completion WHERE task = ?", (task,)).fetchone()
        return json.loads(row[0]) if row else None

    def complete(self, task: str, meta: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO completion (task, meta) VALUES (?, ?)",
                             (task, json.dumps(meta, ensure_ascii=False)))

    def forget_completion(self, task: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM completion WHERE task = ?", (task,))

    def output_bases(self, task: str) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT path, base FROM output_file WHERE task = ?", (task,)).fetchall())

    def close(self) -> None:
        with self._lock:
            self._db.close()
