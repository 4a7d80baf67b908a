"""The compute unit (计算元): a Dask actor owning one StreamingExecutor per script of a task's
chain, with per-key bounded windows. Batches arrive and leave as one pickled columnar payload
(never per-row Python objects over the wire: ARCHITECTURE.md §3)."""

from __future__ import annotations

import pickle
import time
from typing import Any

from ..engine.streaming import StreamingExecutor
from ..lang.program import compile_program

__all__ = ["ComputeUnit", "encode_batch", "decode_result"]


def encode_batch(seqs: list[int], keys: list[Any], columns: dict[str, list]) -> bytes:
    return pickle.dumps((seqs, keys, columns), protocol=pickle.HIGHEST_PROTOCOL)


def decode_result(data: bytes) -> tuple[list[int], list[Any], list[list], list[dict]]:
    """(sequence number, key, output row) of each output, and the errors."""
    return pickle.loads(data)


class ComputeUnit:
    """Runs a chain of scripts: each script's output rows feed the next one (SEED §3.2)."""

    def __init__(self, scripts: list[tuple[str, str]], window: int, task_id: str = ""):
        self.task_id = task_id
        programs = [compile_program(src, path) for src, path in scripts]
        self.executors = [StreamingExecutor(p, window_size=window, key=None) for p in programs]
        self.outputs = programs[-1].outputs
        self.rows = 0
        self.busy = 0.0
        self.started = time.time()
        self._expected = 0  # the next batch number to run
        self._turn: Any = None  # asyncio.Condition, created in the worker's event loop

    async def process(self, batch_no: int, payload: bytes) -> bytes:
        """Run batch ``batch_no``: batches run strictly in the order the pool numbered them,
        whatever order the calls arrive in (several are in flight, over several connections)."""
        import asyncio

        if self._turn is None:
            self._turn = asyncio.Condition()
        async with self._turn:
            await self._turn.wait_for(lambda: self._expected == batch_no)
            try:
                return self._run(payload)
            finally:
                self._expected += 1
                self._turn.notify_all()

    def _run(self, payload: bytes) -> bytes:
        """One batch: rows (as columns) with their sequence numbers and stream keys."""
        t0 = time.perf_counter()
        seqs, keys, columns = pickle.loads(payload)
        errors: list[dict] = []
        rows: list[list] = []
        cur_seqs, cur_keys, data = seqs, keys, columns
        for i, ex in enumerate(self.executors):
            res = ex.push_many(data, keys=cur_keys)
            for e in res.errors:
                d = e.to_dict()
                d["seq"] = cur_seqs[e.row - (ex.rows_in - len(cur_seqs))]
                d["script"] = i
                errors.append(d)
            cur_seqs = [cur_seqs[p] for p in res.positions]
            cur_keys = res.keys
            rows = res.rows
            if i + 1 < len(self.executors):
                names = ex.outputs
                data = {n: [r[j] for r in rows] for j, n in enumerate(names)}
        self.rows += len(seqs)
        self.busy += time.perf_counter() - t0
        return pickle.dumps((cur_seqs, cur_keys, rows, errors), protocol=pickle.HIGHEST_PROTOCOL)

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
