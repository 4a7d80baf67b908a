"""A task's way in: input chunks, pushed rows and retries, validated, numbered and handed to the
compute pool under the task's ingest lock (part of :class:`~.task.Task`).

The lock is the one door: whatever is under it happens between two chunks, which is where a
checkpoint cuts. A durable input logs a chunk before it waits for the door; a task input drops
producer rows it has already taken (sent again after the producer restarted).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from .errors import IllegalTransition, OrchestrationError, PoolError
from .inputs import Chunk, Logged, TaskInput
from .states import ErrorRecord

if TYPE_CHECKING:
    from .checkpoints import Checkpoint

__all__ = ["Ingest", "Rows"]

Rows = tuple[list[int], list[Any], list[list]]  # sequence numbers, keys, a column per schema column


class Ingest:
    """The input side of a task (a mixin of :class:`~.task.Task`: it uses the task's state)."""

    def _connect(self, inp: TaskInput) -> None:
        """Read the output of the producer task (its row numbers decide what was taken)."""
        producer = self.peers.get(self.config.input.task or "")
        if producer is None:
            raise OrchestrationError(f"input.task: no task {self.config.input.task!r} to read from")
        inp.on_committed = self._upstream_committed
        producer.downstream.append(inp)
        latest = self.store.latest(producer.config.id)
        self._upstream_committed(latest.next_seq if latest is not None else 0)

    def _upstream_committed(self, next_seq: int) -> None:
        """The producer committed a checkpoint: rows it numbered below ``next_seq`` never come again."""
        self._upstream_floor = next_seq
        self._upstream_seen = {s for s in self._upstream_seen if s >= next_seq}

    async def _replay_wal(self, ckpt: Checkpoint | None) -> None:
        """Chunks the durable log holds that the checkpoint (if any) does not cover go in again."""
        assert self.wal is not None
        since = ckpt.wal.get("next", 0) if ckpt else 0
        pending = set(ckpt.wal.get("pending", [])) if ckpt else set()
        n = 0
        for rid, chunk in self.wal.records(since, pending):
            if chunk.stream is not None:
                self._streams[chunk.stream] = max(self._streams.get(chunk.stream, 0), chunk.count)
            async with self.ingest:
                await self._ingest(chunk, rid)
            n += 1
        if n:
            self.note(f"replayed {n} chunk(s) from the durable input log")
        for seq, (key, row, attempt) in list(self._retry_rows.items()):
            self.background.spawn(self._retry(seq, key, row, attempt, 0.0), "retry")

    async def _feed(self, chunk: Chunk, logged: Logged | None = None) -> None:
        """A chunk from an input reader: logged first when the input is durable, then in when
        the task takes rows (a stopped task keeps it until it starts again)."""
        rid = self.wal.append(chunk) if self.wal is not None else None
        if rid is not None:
            self._wal_pending.add(rid)
            if chunk.stream is not None:
                self._streams[chunk.stream] = chunk.count
            if logged is not None:
                logged(chunk)
        while True:
            await self._accepting.wait()
            async with self.ingest:
                if self._accepting.is_set():
                    await self._ingest(chunk, rid)
                    return

    async def _ingest(self, chunk: Chunk, rid: int | None) -> tuple[int, list[ErrorRecord]]:
        """Validate, number and submit a chunk (the ingest lock is held): (rows accepted, errors)."""
        await self.checkpointer.bound_retention()
        self._wal_pending.discard(rid)  # type: ignore[arg-type]
        if chunk.end is not None and chunk.source.startswith("file:"):
            self._input_pos = chunk.end
        if chunk.upstream is not None:
            chunk = self._unseen(chunk)
        rows, errors = self._check(chunk)
        for rec in errors:
            self._error(rec)
        await self.rows.emit(rows)
        return len(rows[0]), errors

    def _unseen(self, chunk: Chunk) -> Chunk:
        """A producer's rows without those already taken (sent again after it restarted)."""
        seen, floor = self._upstream_seen, self._upstream_floor
        keep = [i for i, s in enumerate(chunk.upstream) if s >= floor and s not in seen]  # type: ignore[arg-type]
        ups = [chunk.upstream[i] for i in keep]  # type: ignore[index]
        seen.update(ups)
        if len(keep) == len(chunk.upstream):  # type: ignore[arg-type]
            return chunk
        return Chunk(chunk.header, [], [chunk.lines[i] for i in keep], chunk.source, upstream=ups,
                     columns=[[c[i] for i in keep] for c in chunk.columns or []])

    async def push_chunk(self, chunk: Chunk) -> tuple[int, list[ErrorRecord]]:
        """Rows brought by a request (push_data, attach_file): in now, or IllegalTransition if
        the task takes no data now. With a durable input they are logged before this returns."""
        self.check("push")
        async with self.ingest:
            if not self.accepting() or self.transition is not None:
                raise IllegalTransition(f"task {self.config.id!r} is {self.transition or self.state.value}: "
                                        "it takes no data now; try again when it runs")
            rid = self.wal.append(chunk) if self.wal is not None else None
            return await self._ingest(chunk, rid)

    async def push(self, records: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
        """Rows pushed through the API: (accepted count, per-row errors)."""
        n, errors = await self.push_chunk(Chunk(None, list(records), list(range(1, len(records) + 1)), "push"))
        return n, [e.to_dict() for e in errors]

    async def _submit(self, rows: Rows) -> None:
        assert self.pool is not None
        try:
            await self.pool.submit(*rows, time.monotonic())
        except PoolError as exc:
            await self._enter_error(str(exc))

    def _check(self, chunk: Chunk) -> tuple[Rows, list[ErrorRecord]]:
        """Typed columns in schema order, numbered; bad rows become error records (and are skipped)."""
        keys, values, bad = self.checker.check(chunk)
        now = time.time()
        errors = [ErrorRecord(self.config.id, "input", msg, time=now, line=chunk.lines[i], column=col,
                              source=chunk.source) for i, (col, msg) in sorted(bad.items())]
        if bad:
            good = [i for i in range(len(keys)) if i not in bad]
            keys = [keys[i] for i in good]
            values = [[c[i] for i in good] for c in values]
        seqs = list(range(self.next_seq, self.next_seq + len(keys)))
        self.next_seq += len(keys)
        return (seqs, keys, values), errors

    async def _retry(self, seq: int, key: Any, row: tuple, attempt: int, delay: float) -> None:
        await asyncio.sleep(delay)
        while True:
            await self._accepting.wait()
            async with self.ingest:
                if not self._accepting.is_set():
                    continue
                if self._retry_rows.get(seq, (None, None, -1))[2] == attempt:  # not superseded
                    del self._retry_rows[seq]
                    self._retried[seq] = (key, row, attempt)
                    self._attempts[seq] = attempt
                    await self.rows.emit(([seq], [key], [[v] for v in row]))
                return

    def input_position(self) -> dict[str, Any]:
        return dict(self._input_pos) if self._input_pos else {}

    def wal_position(self) -> dict[str, Any]:
        if self.wal is None:
            return {}
        return {"next": self.wal.next_id, "pending": sorted(self._wal_pending), "streams": dict(self._streams),
                "upstream": sorted(self._upstream_seen)}

    def pending_retries(self) -> list[list[Any]]:
        """Rows waiting to be tried again, and rows tried again since the cut (the state at
        the cut does not have them); asked at the barrier, after every earlier result."""
        waiting = {**self._retried, **self._retry_rows}
        return [[seq, key, list(row), attempt] for seq, (key, row, attempt) in sorted(waiting.items())]

    def cut_made(self) -> None:
        self._retried = {}
