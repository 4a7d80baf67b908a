"""The write-ahead log of a durable input (``[task.input] durable = true``).

Every chunk a durable input reads (or a push_data request brings) is appended here, and
handed to the operating system, before the task processes it or reads further; a push is
acknowledged only after that. After a crash of the server, the chunks the last checkpoint does
not cover are read back from the log and processed again, so a row a sender got through is
never lost. The log is fsynced at every checkpoint, and segments the checkpoint covers are
deleted.

Records are numbered from 0; a file holds frames ``[length: 4 bytes][pickle]`` and is named
after its first record. A frame cut short by a crash ends the log.
"""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path
from typing import Any, Iterator

__all__ = ["WriteAheadLog"]

_LEN = struct.Struct("<I")


class WriteAheadLog:
    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        self.next_id = 0
        for seg in self._segments():
            good = 0
            for rid, _, end in self._read(seg):
                self.next_id, good = rid + 1, end
            if good < seg.stat().st_size:  # a frame torn by a crash: cut it off
                os.truncate(seg, good)
            self.next_id = max(self.next_id, int(seg.stem))
        self._file: Any = None

    def _segments(self) -> list[Path]:
        return sorted(self.dir.glob("*.wal"))

    @staticmethod
    def _read(seg: Path) -> Iterator[tuple[int, Any, int]]:
        """(record number, object, end offset) of each whole frame."""
        rid = int(seg.stem)
        with open(seg, "rb") as f:
            while True:
                head = f.read(_LEN.size)
                if len(head) < _LEN.size:
                    return
                (n,) = _LEN.unpack(head)
                body = f.read(n)
                if len(body) < n:
                    return  # cut short by a crash
                try:
                    obj = pickle.loads(body)
                except Exception:  # noqa: BLE001 - a torn frame
                    return
                yield rid, obj, f.tell()
                rid += 1

    def append(self, obj: Any) -> int:
        """Log ``obj``; returns its record number. It is in the OS's hands when this returns."""
        if self._file is None:
            self._file = open(self.dir / f"{self.next_id:016d}.wal", "ab")
        body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        self._file.write(_LEN.pack(len(body)) + body)
        self._file.flush()
        rid = self.next_id
        self.next_id += 1
        return rid

    def records(self, since: int, also: set[int] | frozenset[int] = frozenset()) -> Iterator[tuple[int, Any]]:
        """Records numbered ``since`` or later, and those in ``also``, in order."""
        for seg in self._segments():
            for rid, obj, _ in self._read(seg):
                if rid >= since or rid in also:
                    yield rid, obj

    def checkpointed(self, keep_from: int) -> None:
        """A checkpoint no longer needs records below ``keep_from``: make the log durable on
        disk, start a new segment, and delete the segments wholly below it."""
        if self._file is not None:
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
        segs = self._segments()
        for seg, nxt in zip(segs, segs[1:] + [None]):
            end = int(nxt.stem) if nxt is not None else self.next_id
            if end <= keep_from:
                seg.unlink(missing_ok=True)

    def clear(self) -> None:
        self.close()
        for seg in self._segments():
            seg.unlink(missing_ok=True)
        self.next_id = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
