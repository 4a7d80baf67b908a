"""A task's way out: each batch's results to the output, the buffer and the tasks that read this
one; failed rows to a retry, a skip or the task's error; error records (part of
:class:`~.task.Task`)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

from ..engine.writers import safe_file_name
from .outputs import OutputIOError
from .states import ErrorRecord, TaskState

if TYPE_CHECKING:
    from .checkpoints import Checkpoint
    from .pool import Result

__all__ = ["Delivery", "FLUSH_DELAY"]

FLUSH_DELAY = 0.02  # seconds an output row may wait in a buffer


class Delivery:
    """The output side of a task (a mixin of :class:`~.task.Task`: it uses the task's state)."""

    async def results_emit(self, result: Result) -> None:
        await self.results.emit(result)

    async def _deliver(self, result: Result) -> None:
        output = self.output
        assert output is not None, "results are handled only while the outputs are open"
        try:
            output.write(result.columns, result.keys, result.lines)
        except OutputIOError as exc:
            await self._output_failed(str(exc))
        if output.pending_since is not None:
            self._flush_later()
        self.buffer.add(result.columns)
        for edge in self.downstream:  # tasks reading this one: they take the rows before more come
            await edge.deliver(self.outputs_columns, result.columns, result.seqs)
        if self._attempts:  # rows sent again that went through this time
            failed = {e["seq"] for e in result.errors}
            for s in result.batch.seqs:
                if s not in failed:
                    self._attempts.pop(s, None)
        arrived = result.batch.arrived
        now = time.monotonic()
        sampled = arrived[:: max(1, len(arrived) // 16)]
        self.latencies.extend(now - t for t in sampled)
        self.latency_samples += len(sampled)  # monitors read the samples added since they last looked
        self.processed += len(arrived) - len({e["seq"] for e in result.errors})

    async def _script_errors(self, result: Result) -> None:
        eh = self.config.error_handling
        batch = result.batch
        index = {s: i for i, s in enumerate(batch.seqs)}
        for e in result.errors:
            seq = e["seq"]
            attempt = self._attempts.pop(seq, 0)
            if attempt < eh.retry_count and e["kind"] != "ScriptExit":
                i = index[seq]
                row = tuple(c[i] for c in batch.columns)
                self._retry_rows[seq] = (batch.keys[i], row, attempt + 1)
                delay = 0.1 * 2 ** attempt  # 100 ms x 2^n
                self.background.spawn(self._retry(seq, batch.keys[i], row, attempt + 1, delay), "retry")
                continue
            self._error(ErrorRecord(self.config.id, "script", e["message"], kind=e["kind"], time=time.time(),
                                    line=e.get("line"), seq=seq, key=e.get("key")))
            if not eh.skip_on_error or e["kind"] == "ScriptExit":
                await self._enter_error(f"{e['kind']} at {e.get('file')}:{e.get('line')}: {e['message']}")
                return

    async def _output_failed(self, message: str) -> None:
        self._error(ErrorRecord(self.config.id, "output", message, kind="OutputError", time=time.time()))
        if self.state == TaskState.RUNNING and self.input is not None:
            self.input.pause()  # an I/O failure pauses the task
            self._set_state(TaskState.PAUSED, message)

    def _on_failover(self, message: str) -> None:
        self.note(message)
        self._error(ErrorRecord(self.config.id, "unit", message, kind="UnitLost", time=time.time()))

    def _error(self, rec: ErrorRecord) -> None:
        self.error_count += 1
        self.errors.append(rec)
        if self.config.error_handling.log_errors and self.state_dir is not None:
            path = self.state_dir / "errors" / f"{safe_file_name(self.config.id)}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec.to_dict(), ensure_ascii=False, default=str) + "\n")

    def _flush_later(self) -> None:
        """Rows wait in an output buffer at most FLUSH_DELAY (a timer, armed by the first row)."""
        if self._flush_due is None:
            self._flush_due = asyncio.get_running_loop().call_later(FLUSH_DELAY, self._flush_now)

    def _flush_now(self) -> None:
        self._flush_due = None
        self.background.spawn(self._flush_output(), "flush")

    async def _flush_output(self) -> None:
        out = self.output
        if out is not None and out.pending_since is not None:
            try:
                await out.aflush()
            except OutputIOError as exc:
                await self._output_failed(str(exc))

    def counters(self) -> dict[str, int]:
        return {"processed": self.processed, "errors": self.error_count, "output_rows": self.buffer.total}

    async def output_positions(self) -> dict[str, int] | None:
        """Flush the outputs and say how long each file is (with the files the last checkpoint
        knew and this run has not touched); None: the outputs cannot be written now."""
        previous = self.checkpointer.last.outputs if self.checkpointer.last else {}
        if self.output is None:
            return dict(previous)
        try:
            await self.output.aflush()
            return {**previous, **self.output.positions()}
        except (OutputIOError, OSError) as exc:
            await self._output_failed(str(exc))
            return None

    def checkpointed(self, ckpt: Checkpoint) -> None:
        for edge in self.downstream:
            edge.on_committed(ckpt.next_seq)
        if self.wal is not None:
            self.wal.checkpointed(min([ckpt.wal.get("next", 0), *ckpt.wal.get("pending", [])]))
