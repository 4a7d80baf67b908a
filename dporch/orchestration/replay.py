"""The replay log of a compute unit (upstream backup, docs/architecture.md).

Everything a unit is asked to do goes through its log, in order: micro-batches of rows and
checkpoint markers. The log keeps each item from the moment it is closed until the checkpoint
after it is committed, so a unit that is lost can be rebuilt: restore the committed state on a
new actor and send the log again. Batches whose results were already delivered are marked,
and their results are dropped the second time, so no output row is written twice.

Two cursors walk the log: ``sent`` (items before it were sent to the current actor) and
``done`` (items before it have their results handled). Items before ``done`` stay until
:meth:`trim` drops them at a committed checkpoint.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterator

__all__ = ["Batch", "Marker", "ReplayLog", "Item"]


@dataclass(eq=False)
class Batch:
    """Rows for one actor call, in arrival order, held as columns (one list per schema column:
    they travel to the unit as they are)."""

    seqs: list[int] = field(default_factory=list)
    keys: list[Any] = field(default_factory=list)
    columns: list[list] = field(default_factory=list)  # in schema order
    arrived: list[float] = field(default_factory=list)  # monotonic arrival time per row
    first: float = 0.0
    delivered: bool = False  # its results reached the outputs: a replay drops them


@dataclass(eq=False)
class Marker:
    """A checkpoint barrier: the unit's state after every item before it."""

    checkpoint: int
    full: bool = False  # snapshot every key, not only those changed


Item = Batch | Marker


class ReplayLog:
    def __init__(self) -> None:
        self.items: deque[Item] = deque()
        self.sent = 0
        self.done = 0
        self.rows = 0  # rows held (for the retention bound)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def append(self, item: Item) -> None:
        self.items.append(item)
        if isinstance(item, Batch):
            self.rows += len(item.seqs)

    @property
    def unsent(self) -> int:
        return len(self.items) - self.sent

    @property
    def in_flight(self) -> int:
        return self.sent - self.done

    @property
    def outstanding(self) -> int:
        """Items not yet handled (waiting to be sent, or in flight)."""
        return len(self.items) - self.done

    def next_unsent(self) -> Item:
        item = self.items[self.sent]
        self.sent += 1
        return item

    def oldest_in_flight(self) -> Item:
        return self.items[self.done]

    def mark_done(self) -> None:
        self.done += 1

    def unhandled(self) -> Iterator[Item]:
        """Items not yet handled, in order."""
        for i in range(self.done, len(self.items)):
            yield self.items[i]

    def rewind(self) -> None:
        """Send everything again (to a new actor restored from the committed checkpoint)."""
        self.sent = self.done = 0

    def _pop(self) -> None:
        item = self.items.popleft()
        if isinstance(item, Batch):
            self.rows -= len(item.seqs)
        self.sent = max(0, self.sent - 1)
        self.done = max(0, self.done - 1)

    def trim_to(self, checkpoint: int) -> None:
        """Drop everything up to and including the marker of ``checkpoint`` (committed: the
        state it stands for is in the store). Nothing happens when the log has no such marker."""
        if not any(isinstance(i, Marker) and i.checkpoint == checkpoint for i in self.items):
            return
        while True:
            item = self.items[0]
            self._pop()
            if isinstance(item, Marker) and item.checkpoint == checkpoint:
                return

    def drop_handled(self) -> None:
        """Without checkpoints nothing can be restored, so handled items need not be kept."""
        while self.done > 0:
            self._pop()
