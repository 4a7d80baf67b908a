"""Key routing: which compute unit gets a row.

* ``hash`` -- rendezvous hashing on a stable hash (CRC-32) of the key: a key always goes to the
  same unit, and adding or removing a unit moves only the keys that must move.
* ``round_robin`` -- row by row over the units: balanced, but a key's rows land on different
  units, so per-key history (``x[-1]``, indicators) is not continuous; use it only
  for scripts without history.
* ``sticky`` -- a key -> unit table; a new key goes to the unit with the fewest keys.
"""

from __future__ import annotations

import zlib
from typing import Any, Hashable

__all__ = ["Router", "stable_hash"]


def stable_hash(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


class Router:
    def __init__(self, strategy: str, units: list[Hashable]):
        self.strategy = strategy
        self.units: list[Hashable] = list(units)
        self.table: dict[Any, Hashable] = {}  # key -> unit (hash: a cache; sticky: the assignment)
        self.load: dict[Hashable, int] = {u: 0 for u in self.units}  # keys per unit
        self._next = 0

    def _rendezvous(self, key: Any) -> Hashable:
        text = "" if key is None else str(key)
        return max(self.units, key=lambda u: stable_hash(f"{u}\x1f{text}"))

    def route(self, keys: list[Any]) -> list[Hashable]:
        """The unit of each row, in order."""
        if not self.units:
            raise RuntimeError("no compute unit is available")
        if self.strategy == "round_robin":
            n = len(self.units)
            start = self._next
            self._next = (start + len(keys)) % n
            return [self.units[(start + i) % n] for i in range(len(keys))]
        table = self.table
        out = []
        for k in keys:
            u = table.get(k)
            if u is None:
                u = self._rendezvous(k) if self.strategy == "hash" else min(self.units, key=self.load.__getitem__)
                table[k] = u
                self.load[u] += 1
            out.append(u)
        return out

    def keys_of(self, unit: Hashable) -> list[Any]:
        return [k for k, u in self.table.items() if u == unit]

    def add_unit(self, unit: Hashable) -> dict[Any, Hashable]:
        """Add a unit; returns the keys that move to it (hash routing) with their old unit."""
        self.units.append(unit)
        self.load[unit] = 0
        moved: dict[Any, Hashable] = {}
        if self.strategy == "hash":
            for k, old in list(self.table.items()):
                new = self._rendezvous(k)
                if new != old:
                    moved[k] = old
                    self.table[k] = new
                    self.load[old] -= 1
                    self.load[new] += 1
        return moved

    def remove_unit(self, unit: Hashable) -> list[Any]:
        """Remove a unit and forget its routes; returns its keys (they route elsewhere next)."""
        if unit in self.units:
            self.units.remove(unit)
        self.load.pop(unit, None)
        keys = self.keys_of(unit)
        for k in keys:
            del self.table[k]
        self._next = 0
        return keys

    def state(self) -> dict[str, Any]:
        """What a restart needs to route as before: sticky assignments, the round-robin turn
        (hash routes follow from the units alone)."""
        out: dict[str, Any] = {"next": self._next}
        if self.strategy == "sticky":
            out["table"] = [[k, u] for k, u in self.table.items()]
        return out

    def load_state(self, state: dict[str, Any]) -> None:
        self._next = int(state.get("next", 0))
        for k, u in state.get("table", []):
            if u in self.load:
                self.table[k] = u
                self.load[u] += 1

    def reassign(self, keys: list[Any]) -> dict[Any, Hashable]:
        """Route ``keys`` now (after a removal); returns key -> new unit."""
        return dict(zip(keys, self.route(keys)))
