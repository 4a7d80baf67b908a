"""The compute unit (计算元): a Dask actor owning one StreamingExecutor per script of a task's
chain, with per-key bounded windows. Batches arrive and leave as one pickled columnar payload
(never per-row Python objects over the wire: docs/architecture.md).

Calls that touch the windows (``process``, ``snapshot``) carry a number and run strictly in
that order, whatever order they arrive in: a snapshot numbered k is the state after batch
k - 1, which is what makes checkpoints consistent without stopping the unit.
"""

from __future__ import annotations

import asyncio
import pickle
import time
from typing import TYPE_CHECKING, Any, Sequence

from ..engine.streaming import StreamingExecutor
from ..lang.program import compile_program

if TYPE_CHECKING:
    from ..engine.row_blocks import Lines

__all__ = ["ComputeUnit", "encode_batch", "decode_result", "KeyStates"]

#: key -> that key's state (one entry per script of the chain), pickled.
KeyStates = dict[Any, bytes]


def encode_batch(seqs: list[int], keys: list[Any], columns: dict[str, list], csv_lines: bool = False) -> bytes:
    """A batch for :meth:`ComputeUnit.process`; ``csv_lines``: also return the output rows' CSV
    lines (the unit formats them, not the orchestrator: units scale out, it does not)."""
    return pickle.dumps((seqs, keys, columns, csv_lines), protocol=pickle.HIGHEST_PROTOCOL)


def decode_result(data: bytes) -> tuple[list[int], list[Any], list[Sequence[Any]], list[dict], Lines | None]:
    """(sequence number and key of each output row, the output columns, the errors, the rows'
    CSV lines when asked for)."""
    parts = pickle.loads(data)
    return parts if len(parts) == 5 else (*parts, None)  # a unit of an earlier dporch: no lines


class ComputeUnit:
    """Runs a chain of scripts: each script's output rows feed the next one."""

    def __init__(self, scripts: list[tuple], window: int, task_id: str = "",
                 columns: list[str] | None = None):
        self.task_id = task_id
        # (source, path) or (source, path, parameter values) per script
        programs = [compile_program(s[0], s[1], params=s[2] if len(s) > 2 else None) for s in scripts]
        self.executors = [StreamingExecutor(p, window_size=window, key=None) for p in programs]
        if columns is not None:  # bound up front, so state can be restored before any batch
            layout = list(columns)
            for ex in self.executors:
                ex.bind(layout)
                layout = ex.outputs
        self.outputs = programs[-1].outputs
        self.rows = 0
        self.busy = 0.0
        self.started = time.time()
        self._expected = 0  # the number of the next ordered call to run
        self._turn: asyncio.Condition | None = None  # created in the worker's event loop

    async def _wait_turn(self, no: int) -> asyncio.Condition:
        if self._turn is None:
            self._turn = asyncio.Condition()
        await self._turn.acquire()
        try:
            await self._turn.wait_for(lambda: self._expected == no)
        except BaseException:
            self._turn.release()
            raise
        return self._turn

    def _done_turn(self, turn: asyncio.Condition) -> None:
        self._expected += 1
        turn.notify_all()
        turn.release()

    async def process(self, batch_no: int, payload: bytes) -> bytes:
        """Run batch ``batch_no`` (after every call numbered before it)."""
        turn = await self._wait_turn(batch_no)
        try:
            return self._run(payload)
        finally:
            self._done_turn(turn)

    async def snapshot(self, no: int, full: bool = False) -> bytes:
        """The state after every call numbered before ``no``: the keys changed since the
        previous snapshot (every key with ``full``) and the keys dropped since then."""
        turn = await self._wait_turn(no)
        try:
            changed: set[Any] = set()
            dropped: set[Any] = set()
            for ex in self.executors:
                c, d = ex.take_changes()
                changed |= c
                dropped |= d
            if full:
                changed = {k for ex in self.executors for k in ex.keys}
            dropped -= changed
            states = {k: pickle.dumps([ex.stream_state(k) for ex in self.executors], protocol=pickle.HIGHEST_PROTOCOL)
                      for k in changed}
            return pickle.dumps((states, sorted(dropped, key=repr)), protocol=pickle.HIGHEST_PROTOCOL)
        finally:
            self._done_turn(turn)

    def restore(self, states: KeyStates) -> int:
        """Install keys' states from a snapshot (a new unit, before its first call)."""
        for k, blob in states.items():
            for ex, state in zip(self.executors, pickle.loads(blob)):
                if state is not None:
                    ex.load_stream_state(k, state)
        for ex in self.executors:
            ex.take_changes()  # restored state is already in the checkpoint
        return len(states)

    def _run(self, payload: bytes) -> bytes:
        """One batch: rows (as columns) with their sequence numbers and stream keys."""
        t0 = time.perf_counter()
        seqs, keys, columns, *asked = pickle.loads(payload)  # (an earlier orchestrator asks for no lines)
        errors: list[dict] = []
        cur_seqs, cur_keys, data = seqs, keys, columns
        out: list[Sequence[Any]] = [() for _ in self.outputs]
        for i, ex in enumerate(self.executors):
            res = ex.push_many(data, keys=cur_keys)
            for e in res.errors:
                d = e.to_dict()
                d["seq"] = cur_seqs[e.row - (ex.rows_in - len(cur_seqs))]
                d["script"] = i
                errors.append(d)
            cur_seqs = [cur_seqs[p] for p in res.positions]
            cur_keys = res.keys
            out = list(zip(*res.rows)) if res.rows else [() for _ in ex.outputs]  # columns as tuples: no copies
            data = dict(zip(ex.outputs, out))  # the next script's input
        lines = None
        if asked and asked[0] and cur_seqs and out:
            from ..engine.row_blocks import line_buffers

            try:
                lines = line_buffers(out)
            except Exception:  # noqa: BLE001 - a cell that cannot be written: the orchestrator's writer says which
                lines = None
        self.rows += len(seqs)
        self.busy += time.perf_counter() - t0
        return pickle.dumps((cur_seqs, cur_keys, out, errors, lines), protocol=pickle.HIGHEST_PROTOCOL)

    def export_state(self, keys: list[Any] | None = None) -> bytes:
        return pickle.dumps([ex.export_state(keys) for ex in self.executors])

    def import_state(self, data: bytes) -> int:
        parts = pickle.loads(data)
        n = 0
        for ex, part in zip(self.executors, parts):
            n = len(ex.import_state(part))
        return n

    def drop_keys(self, keys: list[Any]) -> None:
        for ex in self.executors:
            ex.drop_keys(keys)

    def stats(self) -> dict[str, Any]:
        s = self.executors[0].stats()
        return {"rows": self.rows, "busy_seconds": self.busy, "keys": s["keys"],
                "errors": sum(ex.errors for ex in self.executors)}

    def ping(self) -> str:
        return "ok"
