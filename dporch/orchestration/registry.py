"""Persistent task registry: every task's configuration (with live changes)
and its last state, in SQLite under the state directory, so a restarted server brings each
task back as it was: running, paused, stopped or failed."""

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
    updated REAL NOT NULL,
    reason TEXT,
    file_config TEXT
)
"""


@dataclass
class Entry:
    id: str
    config: dict[str, Any]
    base_dir: str
    origin: str  # "api" or "config"
    state: str
    reason: str | None = None  # why it is in that state (an error's message)
    file_config: dict[str, Any] | None = None  # a config-file task: what the file said


class Registry:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(_SCHEMA)
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(tasks)")}
        for column in ("reason", "file_config"):  # a registry written by an earlier version
            if column not in columns:
                self.db.execute(f"ALTER TABLE tasks ADD COLUMN {column} TEXT")

    def save(self, task_id: str, config: dict[str, Any], base_dir: str, origin: str, state: str,
             reason: str | None = None, file_config: dict[str, Any] | None = None) -> None:
        self.db.execute(
            "INSERT INTO tasks (id, config, base_dir, origin, state, updated, reason, file_config) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET config=excluded.config, base_dir=excluded.base_dir, "
            "origin=excluded.origin, state=excluded.state, updated=excluded.updated, reason=excluded.reason, "
            "file_config=excluded.file_config",
            (task_id, json.dumps(config), base_dir, origin, state, time.time(), reason,
             json.dumps(file_config) if file_config is not None else None))

    def set_state(self, task_id: str, state: str) -> None:
        self.db.execute("UPDATE tasks SET state = ?, updated = ? WHERE id = ?", (state, time.time(), task_id))

    def delete(self, task_id: str) -> None:
        self.db.execute("DELETE FROM tasks WHERE id = ?", (task_id,))

    def entries(self) -> list[Entry]:
        rows = self.db.execute("SELECT id, config, base_dir, origin, state, reason, file_config FROM tasks "
                               "ORDER BY updated").fetchall()
        return [Entry(r[0], json.loads(r[1]), r[2], r[3], r[4], r[5], json.loads(r[6]) if r[6] else None)
                for r in rows]

    def close(self) -> None:
        self.db.close()
