"""The task manager: the tasks, every action on them, and what survives a restart.

With a state directory, every task's configuration and state go to the registry at each change
(including changes a task makes by itself: an error, "input finished", a lost scheduler), and
checkpoints go to the checkpoint store; :meth:`TaskManager.restore` brings them back."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..lang.errors import DPLangError
from ..lang.program import Program, compile_program, read_script
from .config import (ConfigError, ConfigIssue, GlobalConfig, LoadedConfig, TaskConfig, check_ports, deep_merge,
                     parse_task, task_to_dict)
from .checkpoints import CheckpointStore
from .cluster import Cluster
from .errors import IllegalTransition, NotFound, OrchestrationError
from .aio import Background
from .paths import PathPolicy
from .registry import Registry
from .task import Task, TaskState
from .workflow import build_graph, is_batch, topological

__all__ = ["TaskManager", "NotFound", "LIVE_FIELDS"]

log = logging.getLogger("dporch.manager")

#: Fields a running task accepts changes to.
LIVE_FIELDS = {("compute_pool", "max_size"), ("output", "buffer_size")}


def compile_chain(cfg: TaskConfig, issues: list[ConfigIssue]) -> list[Program]:
    """Compile the task's scripts (the `dporch check` rules); the output columns of each must
    cover the INPUT columns of the next, and the first script's INPUT the schema."""
    programs: list[Program] = []
    for i, path in enumerate(cfg.scripts):
        try:
            programs.append(compile_program(read_script(path), path, params=cfg.params, ignore_unknown_params=True))
        except DPLangError as exc:
            issues.append(ConfigIssue(cfg.source, cfg.id, "params" if exc.kind == "ParamError" else f"scripts[{i}]",
                                      exc.header() if exc.line else f"{exc.kind}: {exc.message}"))
            return []
    for name in cfg.params:  # each script takes the parameters it declares; none may be left over
        if not any(name in p.params for p in programs):
            issues.append(ConfigIssue(cfg.source, cfg.id, f"params.{name}", "no script of the task declares this "
                                      "parameter in -- PARAMS --"))
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
    """``client``: a Dask client (asynchronous) or a :class:`Cluster`; None builds and checks
    tasks but cannot start them."""

    def __init__(self, client: Any, *, state_dir: Path | None = None, global_: GlobalConfig | None = None,
                 paths: PathPolicy | None = None):
        self.cluster = client if isinstance(client, Cluster) or client is None else Cluster(client)
        self.state_dir = state_dir
        self.global_ = global_ or GlobalConfig()
        self.paths = paths  # where tasks may read and write (None: anywhere)
        self.tasks: dict[str, Task] = {}
        self.store = CheckpointStore(state_dir / "checkpoints.sqlite" if state_dir else None)
        self.registry = Registry(state_dir / "registry.sqlite") if state_dir else None
        self._background = Background("task manager")
        self._persist = False  # on once restore() has read what the previous run left
        self._file_configs: dict[str, dict[str, Any]] = {}  # config-file tasks: what the file says
        self._watching = False
        if self.cluster is not None:
            self.cluster.listeners.append(self._cluster_changed)

    @property
    def client(self) -> Any:
        return self.cluster.client if self.cluster is not None else None

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
        current = self.tasks.get(cfg.id)
        held = None
        if current is not None and current.input is not None and current.config.input.type == "tcp":
            held = (current.config.input.host, current.config.input.port)
        issues += check_ports(cfg, {p for p in taken if p}, held)
        if self.paths is not None:
            issues += self.paths.check(cfg)
        programs = compile_chain(cfg, issues)
        if issues:
            raise ConfigError(issues)
        task = Task(cfg, programs, state_dir=self.state_dir, store=self.store, on_change=self.persist)
        task.peers = self.tasks
        return task

    def add(self, task: Task) -> Task:
        if task.config.id in self.tasks:
            raise ConfigError([ConfigIssue(task.config.source, task.config.id, "id",
                                           "a task with this id already exists (delete it first, or use another id)")])
        self.tasks[task.config.id] = task
        task.note("created")
        self.persist(task)
        return task

    def create(self, raw: dict[str, Any], *, source: str | None = None, base_dir: str = ".") -> Task:
        if isinstance(raw, dict) and isinstance(raw.get("id"), str) and raw["id"] in self.tasks:
            raise ConfigError([ConfigIssue(source, raw.get("id"), "id",
                                           "a task with this id already exists (delete it first, or use another id)")])
        return self.add(self.build(raw, source=source, base_dir=base_dir))

    def persist(self, task: Task) -> None:
        """Record the task's configuration and state (at every change of either)."""
        if self.registry is None or not self._persist or self.tasks.get(task.config.id) is not task:
            return
        origin = "api" if task.config.source is None else "config"
        reason = task.last_error if task.state == TaskState.ERROR else task.reason
        self.registry.save(task.config.id, task_to_dict(task.config), task.config.base_dir, origin,
                           task.state.value, reason, self._file_configs.get(task.config.id))

    def load(self, loaded: LoadedConfig) -> list[ConfigIssue]:
        """Create the tasks of a read tasks file (invalid ones are reported and left out);
        :meth:`restore` starts them."""
        self.global_ = loaded.global_
        issues = list(loaded.issues)
        for cfg in loaded.tasks:
            try:
                task = self.add(self.build_config(cfg))
            except ConfigError as exc:
                issues += exc.issues
                continue
            self._file_configs[cfg.id] = task_to_dict(task.config)
        return issues

    async def restore(self, *, restore_running: bool = True) -> list[str]:
        """Bring back what the registry knows: tasks created through the API, live
        changes, and every task's state (a running or paused task continues from its
        checkpoint); start enabled config-file tasks seen for the first time. Returns notes."""
        notes: list[str] = []
        entries = {e.id: e for e in self.registry.entries()} if self.registry else {}
        for entry in entries.values():
            if entry.origin != "api":
                continue
            if entry.id in self.tasks:
                notes.append(f"task {entry.id!r} is also in the config file; the config file's wins")
                continue
            try:
                self.tasks[entry.id] = self.build(entry.config, base_dir=entry.base_dir)
            except ConfigError as exc:
                notes.append(f"task {entry.id!r} cannot be restored: {exc}")
        configs = {tid: t.config for tid, t in self.tasks.items()}
        graph, _ = build_graph(list(configs.values()))
        due: list[str] = []  # finished or new batch tasks of the tasks file: run if out of date
        for tid in reversed(topological(graph)):  # readers first: an edge is there before rows flow
            task = self.tasks[tid]
            entry = entries.get(tid)
            if entry is not None and entry.origin == "config" and entry.file_config == self._file_configs.get(tid):
                self._keep_live_changes(task, entry.config)
            state = entry.state if entry is not None else ("running" if task.config.enabled else "ready")
            if (task.config.source is not None and task.config.enabled and is_batch(task.config, configs)
                    and (entry is None or entry.state == "stopped" and entry.reason in ("input finished", "up to date"))):
                task.state, task.reason = TaskState.STOPPED, entry.reason if entry else None
                due.append(tid)
                continue
            try:
                await self._bring_back(task, state, entry.reason if entry else None, restore_running)
            except Exception as exc:  # noqa: BLE001 - one task failing must not stop the others
                notes.append(f"task {tid!r} failed to restart: {exc}")
        self._persist = True
        for task in self.tasks.values():
            self.persist(task)
        if due and self.cluster is not None:
            self._background.spawn(self._bring_up_to_date(due), "workflow")
        return notes

    async def _bring_up_to_date(self, tids: list[str]) -> None:
        """Run the batch tasks of the tasks file that are out of date, in dependency order (the
        rule of ``dporch workflow run``)."""
        from .runner import execute, plan

        try:
            the_plan = plan(self, tids)
        except ConfigError as exc:
            log.warning("the batch tasks cannot run as a workflow: %s", exc)
            return
        for step in the_plan.steps:
            task = self.tasks[step.task]
            if not step.reasons:
                task.reason = "up to date"
                self.persist(task)
        await execute(self, the_plan)

    async def _bring_back(self, task: Task, state: str, reason: str | None, restore_running: bool) -> None:
        if state in ("running", "paused") and (not restore_running or not task.config.enabled
                                               and task.config.source is not None):
            state = "stopped"
        if state == "running":
            await self.start(task.config.id)
        elif state == "paused":
            await self.start(task.config.id, paused=True)
        elif state in ("stopped", "error"):
            task.state = TaskState(state)
            task.reason = reason
            task.last_error = reason if state == "error" else None

    def _keep_live_changes(self, task: Task, recorded: dict[str, Any]) -> None:
        """A config-file task whose file is as it was keeps the changes made while it ran."""
        for section, fld in LIVE_FIELDS:
            value = recorded.get(section, {}).get(fld)
            if value is not None:
                setattr(getattr(task.config, section), fld, value)

    # -- actions ----------------------------------------------------------------------------------
    async def start(self, task_id: str, *, paused: bool = False, fresh: bool = False) -> Task:
        task = self.get(task_id)
        if self.cluster is None:
            raise OrchestrationError("this manager has no Dask cluster to run tasks on")
        if not self._watching:
            self._watching = True
            self.cluster.start()
        try:
            await task.start(self.cluster, paused=paused, fresh=fresh)
        except IllegalTransition:
            raise
        except Exception as exc:
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
        readers = sorted(t.config.id for t in self.tasks.values() if t.config.input.type == "task"
                         and t.config.input.task == task_id and t is not task)
        if readers:
            raise IllegalTransition(f"task {task_id!r} feeds {', '.join(readers)}: delete or change those first")
        del self.tasks[task_id]
        await task.close()
        self.store.clear(task_id)
        self.store.forget_completion(task_id)
        if self.registry is not None:
            self.registry.delete(task_id)

    async def update(self, task_id: str, updates: dict[str, Any]) -> tuple[Task, list[str]]:
        """Deep-merge ``updates`` into the task's configuration. A running or paused task takes
        only the live fields; others need the task stopped (the reason says so)."""
        task = self.get(task_id)
        if not isinstance(updates, dict) or not updates:
            raise ConfigError([ConfigIssue(None, task_id, "updates", "a non-empty table of changes")])
        if "id" in updates and updates["id"] != task_id:
            raise ConfigError([ConfigIssue(None, task_id, "id", "the id of a task cannot change")])
        changed = _leaves(updates)
        if task.transition is not None:
            raise IllegalTransition(f"task {task_id!r} is {task.transition}; try again in a moment")
        if task.state in (TaskState.RUNNING, TaskState.PAUSED):
            refused = [".".join(p) for p in changed if p not in LIVE_FIELDS]
            if refused:
                raise IllegalTransition(
                    f"task {task_id!r} is {task.state.value}: only compute_pool.max_size and output.buffer_size "
                    f"change while it runs; stop it to change {', '.join(refused)}")
            applied = await self._apply_live(task, updates)
            self.persist(task)
            return task, applied
        raw = deep_merge(task_to_dict(task.config), updates)
        new = self.build(raw, source=task.config.source, base_dir=task.config.base_dir)
        await task.released()
        await task.close()
        new.state = task.state if task.state != TaskState.ERROR else TaskState.READY
        new.log = task.log
        new.downstream = task.downstream  # tasks reading this one keep reading it
        self.tasks[task_id] = new
        new.note(f"updated: {', '.join('.'.join(p) for p in changed)}")
        self.persist(new)
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
            if task.pool is not None and task.pool.size > new_max:
                await task.scale(new_max - task.pool.size)
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

    async def _cluster_changed(self, up: bool) -> None:
        for task in list(self.tasks.values()):
            if up:
                await task.cluster_back()
            else:
                await task.cluster_lost()

    async def shutdown(self) -> None:
        """Stop every running or paused task (drain, final checkpoint, release the units) and
        close everything; the registry keeps the states they had, so a restart resumes them."""
        self._persist = False
        await self._background.cancel()
        for task in list(self.tasks.values()):
            if task.state in (TaskState.RUNNING, TaskState.PAUSED):
                try:
                    await task.stop()
                except Exception as exc:  # noqa: BLE001
                    log.warning("stopping %s: %s", task.config.id, exc)
            await task.released()
            await task.close()
        if self.cluster is not None:
            await self.cluster.close()
        if self.registry is not None:
            self.registry.close()
        self.store.close()


def _leaves(d: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out += _leaves(v, prefix + (k,))
        else:
            out.append(prefix + (k,))
    return out
