"""The task manager (SEED §2.2.2): the registry of tasks and every action on them."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from ..lang.errors import DPLangError
from ..lang.program import Program, compile_program, read_script
from .config import (ConfigError, ConfigIssue, GlobalConfig, TaskConfig, check_ports, deep_merge,
                     load_config, parse_task, task_to_dict)
from .task import IllegalTransition, OrchestrationError, Task, TaskState

__all__ = ["TaskManager", "NotFound", "LIVE_FIELDS"]

log = logging.getLogger("dporch.manager")

#: Fields a running task accepts changes to (SEED §4.2.3).
LIVE_FIELDS = {("compute_pool", "max_size"), ("output", "buffer_size")}


class NotFound(OrchestrationError):
    code = "not_found"


def compile_chain(cfg: TaskConfig, issues: list[ConfigIssue]) -> list[Program]:
    """Compile the task's scripts (the `dporch check` rules); the output columns of each must
    cover the INPUT columns of the next, and the first script's INPUT the schema."""
    programs: list[Program] = []
    for i, path in enumerate(cfg.scripts):
        try:
            programs.append(compile_program(read_script(path), path))
        except DPLangError as exc:
            issues.append(ConfigIssue(cfg.source, cfg.id, f"scripts[{i}]",
                                      exc.header() if exc.line else f"{exc.kind}: {exc.message}"))
            return []
    schema = {c.name for c in cfg.schema}
    first = programs[0] if programs else None
    if first is not None and schema:
        missing = [c for c in first.inputs if c not in schema]
        if missing:
            issues.append(ConfigIssue(cfg.source, cfg.id, "scripts[0]",
                                      f"INPUT columns {missing} are not in the schema ({', '.join(sorted(schema))})"))
    if first is not None and not schema and not first.inputs:
        issues.append(ConfigIssue(cfg.source, cfg.id, "schema", "give a schema, or declare INPUT columns in the first script"))
    for i in range(1, len(programs)):
        prev, cur = programs[i - 1], programs[i]
        missing = [c for c in cur.inputs if c not in prev.outputs]
        if missing:
            issues.append(ConfigIssue(cfg.source, cfg.id, f"scripts[{i}]",
                                      f"INPUT columns {missing} are not OUTPUT columns of the previous script"))
    return programs


class TaskManager:
    def __init__(self, client: Any, *, state_dir: Path | None = None, global_: GlobalConfig | None = None):
        self.client = client
        self.state_dir = state_dir
        self.global_ = global_ or GlobalConfig()
        self.tasks: dict[str, Task] = {}
        self.lock = asyncio.Lock()

    # -- registry ---------------------------------------------------------------------------------
    def get(self, task_id: Any) -> Task:
        task = self.tasks.get(task_id) if isinstance(task_id, str) else None
        if task is None:
            known = ", ".join(sorted(self.tasks)) or "none"
            raise NotFound(f"task not found: {task_id!r} (known tasks: {known})")
        return task

    def build(self, raw: dict[str, Any], *, source: str | None = None, base_dir: str = ".") -> Task:
        """Validate a task table (TOML or JSON) and compile its scripts -> a Ready task."""
        issues: list[ConfigIssue] = []
        cfg = parse_task(raw, file=source, base_dir=base_dir, global_=self.global_, issues=issues)
        if cfg is None or issues:
            raise ConfigError(issues)
        return self.build_config(cfg)

    def build_config(self, cfg: TaskConfig) -> Task:
        issues: list[ConfigIssue] = []
        taken = {t.config.input.port for tid, t in self.tasks.items() if tid != cfg.id and t.config.input.type == "tcp"}
        issues += check_ports(cfg, {p for p in taken if p})
        programs = compile_chain(cfg, issues)
        if issues:
            raise ConfigError(issues)
        return Task(cfg, programs, state_dir=self.state_dir)

    def add(self, task: Task) -> Task:
        if task.config.id in self.tasks:
            raise ConfigError([ConfigIssue(task.config.source, task.config.id, "id",
                                           "a task with this id already exists (delete it first, or use another id)")])
        self.tasks[task.config.id] = task
        task.note("created")
        return task

    def create(self, raw: dict[str, Any], *, source: str | None = None, base_dir: str = ".") -> Task:
        if isinstance(raw, dict) and raw.get("id") in self.tasks:
            raise ConfigError([ConfigIssue(source, raw.get("id"), "id",
                                           "a task with this id already exists (delete it first, or use another id)")])
        return self.add(self.build(raw, source=source, base_dir=base_dir))

    async def load(self, path: str | Path, *, autostart: bool = True) -> list[ConfigIssue]:
        """Create the tasks of a tasks.toml (invalid ones are reported and left out) and start
        the enabled ones."""
        loaded = load_config(path)
        self.global_ = loaded.global_
        issues = list(loaded.issues)
        for cfg in loaded.tasks:
            try:
                task = self.add(self.build_config(cfg))
            except ConfigError as exc:
                issues += exc.issues
                continue
            if autostart and cfg.enabled:
                try:
                    await self.start(task.config.id)
                except Exception as exc:  # noqa: BLE001 - one task failing must not stop the others
                    issues.append(ConfigIssue(cfg.source, cfg.id, "start", str(exc)))
        for i in issues:
            log.error("config: %s", i)
        return issues

    # -- actions ----------------------------------------------------------------------------------
    async def start(self, task_id: str) -> Task:
        task = self.get(task_id)
        task.check("start")
        if task.state == TaskState.STOPPED:  # Stopped -> Ready -> Running
            task.state = TaskState.READY
        try:
            await task.start(self.client)
        except Exception as exc:
            await task._shutdown()
            task.state = TaskState.ERROR
            task.last_error = f"start failed: {exc}"
            raise OrchestrationError(f"task {task_id!r} failed to start: {exc}") from exc
        return task

    async def pause(self, task_id: str) -> Task:
        task = self.get(task_id)
        await task.pause()
        return task

    async def resume(self, task_id: str) -> Task:
        task = self.get(task_id)
        await task.resume()
        return task

    async def stop(self, task_id: str) -> Task:
        task = self.get(task_id)
        await task.stop()
        return task

    def reset(self, task_id: str) -> Task:
        task = self.get(task_id)
        task.reset()
        return task

    async def delete(self, task_id: str) -> None:
        task = self.get(task_id)
        task.check("delete")
        await task.released()
        del self.tasks[task_id]

    async def update(self, task_id: str, updates: dict[str, Any]) -> tuple[Task, list[str]]:
        """Deep-merge ``updates`` into the task's configuration. A running or paused task takes
        only the live fields; others need the task stopped (the reason says so)."""
        task = self.get(task_id)
        if not isinstance(updates, dict) or not updates:
            raise ConfigError([ConfigIssue(None, task_id, "updates", "a non-empty table of changes")])
        if "id" in updates and updates["id"] != task_id:
            raise ConfigError([ConfigIssue(None, task_id, "id", "the id of a task cannot change")])
        changed = _leaves(updates)
        if task.state in (TaskState.RUNNING, TaskState.PAUSED):
            refused = [".".join(p) for p in changed if p not in LIVE_FIELDS]
            if refused:
                raise IllegalTransition(
                    f"task {task_id!r} is {task.state.value}: only compute_pool.max_size and output.buffer_size "
                    f"change while it runs; stop it to change {', '.join(refused)}")
            return task, await self._apply_live(task, updates)
        raw = deep_merge(task_to_dict(task.config), updates)
        new = self.build(raw, source=task.config.source, base_dir=task.config.base_dir)
        new.state = task.state if task.state != TaskState.ERROR else TaskState.READY
        new.log = task.log
        self.tasks[task_id] = new
        new.note(f"updated: {', '.join('.'.join(p) for p in changed)}")
        return new, ["config"]

    async def _apply_live(self, task: Task, updates: dict[str, Any]) -> list[str]:
        applied = []
        pool_cfg = task.config.compute_pool
        new_max = updates.get("compute_pool", {}).get("max_size")
        if new_max is not None:
            if not isinstance(new_max, int) or isinstance(new_max, bool) or new_max < pool_cfg.initial_size:
                raise ConfigError([ConfigIssue(None, task.config.id, "compute_pool.max_size",
                                               f"an integer at least initial_size ({pool_cfg.initial_size})")])
            pool_cfg.max_size = new_max
            if task.pool is not None:
                while task.pool.size > new_max and await task.pool.remove_unit():
                    pass
            applied.append("compute_pool.max_size")
        size = updates.get("output", {}).get("buffer_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 1:
                raise ConfigError([ConfigIssue(None, task.config.id, "output.buffer_size", "an integer at least 1")])
            task.config.output.buffer_size = size
            if task.output is not None:
                task.output.set_buffer_size(size)
            applied.append("output.buffer_size")
        task.note(f"updated live: {', '.join(applied)}")
        return applied

    async def shutdown(self) -> None:
        """Stop every running or paused task: drain, flush, release the units."""
        for task in list(self.tasks.values()):
            if task.state in (TaskState.RUNNING, TaskState.PAUSED):
                try:
                    await task.stop()
                except Exception as exc:  # noqa: BLE001
                    log.warning("stopping %s: %s", task.config.id, exc)
            await task.released()


def _leaves(d: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out += _leaves(v, prefix + (k,))
        else:
            out.append(prefix + (k,))
    return out
