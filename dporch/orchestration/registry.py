"""Persistent task registry (SEED §8.3, §12.2): task configurations and their last state in
SQLite under the state directory, so a restarted server knows the tasks created through the API."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Registry", "Entry"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    base_dir TEXT NOT NULL,
    origin TEXT NOT NULL,
    state TEXT NOT NULL,
    updated REAL NOT NULL
)
"""


@dataclass
class Entry:
    id: str
    config: dict[str, Any]
    base_dir: str
    origin: str  # "api" or "config"
    state: str


class Registry:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(_SCHEMA)

    def save(self, task_id: str, config: dict[str, Any], base_dir: str, origin: str, state: str) -> None:
        self.db.execute(
            "INSERT INTO tasks (id, config, base_dir, origin, state, updated) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET config=excluded.config, base_dir=excluded.base_dir, "
            "origin=excluded.origin, state=excluded.state, updated=excluded.updated",
            (task_id, json.dumps(config), base_dir, origin, state, time.time()))

    def set_state(self, task_id: str, state: str) -> None:
        self.db.execute("UPDATE tasks SET state = ?, updated = ? WHERE id = ?", (state, time.time(), task_id))

    def delete(self, task_id: str) -> None:
        self.db.execute("DELETE FROM tasks WHERE id = ?", (task_id,))

    def entries(self) -> list[Entry]:
        rows = self.db.execute("SELECT id, config, base_dir, origin, state FROM tasks ORDER BY updated").fetchall()
        return [Entry(r[0], json.loads(r[1]), r[2], r[3], r[4]) for r in rows]

    def close(self) -> None:
        self.db.close()
