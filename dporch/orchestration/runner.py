"""Running a workflow: the batch tasks a set of targets needs, in dependency order, each only
when it is out of date, independent branches at the same time.

A task runs when all the tasks whose files it reads have finished (or were up to date); a task
reading another task's rows (``type = "task"``) starts before that task, so that it takes every
row. A run that fails stops the scheduling of new tasks; those already running finish.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Callable

from .config import ConfigError, ConfigIssue
from .manager import TaskManager
from .states import TaskState
from .workflow import Graph, build_graph, is_batch, topological

__all__ = ["Step", "Plan", "plan", "execute"]


@dataclass
class Step:
    task: str
    reasons: list[str]  # why it runs; [] = up to date, skipped
    result: str = ""  # after execute: "done", "failed: ...", "not run: ..."


@dataclass
class Plan:
    graph: Graph
    steps: list[Step] = field(default_factory=list)

    @property
    def runs(self) -> list[Step]:
        return [s for s in self.steps if s.reasons]


def plan(manager: TaskManager, targets: list[str] | None = None, *, force: set[str] = frozenset()) -> Plan:
    """What must run for ``targets`` (default: every batch task) and why."""
    configs = {tid: t.config for tid, t in manager.tasks.items()}
    graph, issues = build_graph(list(configs.values()))
    if issues:
        raise ConfigError(issues)
    unknown = sorted(set(targets or []) - set(configs)) + sorted(force - set(configs))
    if unknown:
        raise ConfigError([ConfigIssue(None, None, "targets", f"unknown task(s): {', '.join(unknown)} "
                                                              f"(tasks: {', '.join(sorted(configs))})")])
    chosen = graph.closure(targets) if targets else {t for t, c in configs.items() if c.enabled and is_batch(c, configs)}
    endless = sorted(t for t in chosen if not is_batch(configs[t], configs))
    if endless:
        raise ConfigError([ConfigIssue(None, None, "targets", f"{', '.join(endless)}: not batch tasks (their input "
                                                              "never ends); run them with dporch serve")])
    result = Plan(graph)
    runs: set[str] = set()
    for tid in topological(graph, chosen):
        upstream_runs = any(u in runs for u in graph.upstream(tid))
        reasons = manager.tasks[tid].out_of_date(forced=tid in force, upstream_runs=upstream_runs)
        if reasons:
            runs.add(tid)
        result.steps.append(Step(tid, reasons))
    return result


async def execute(manager: TaskManager, the_plan: Plan, *,
                  on_change: Callable[[Step, str], None] = lambda step, what: None, poll: float = 0.05) -> bool:
    """Run the plan's out-of-date tasks; True when every one finished."""
    graph = the_plan.graph
    steps = {s.task: s for s in the_plan.steps}
    waiting = [s.task for s in the_plan.steps if s.reasons]
    finished = {s.task for s in the_plan.steps if not s.reasons}
    running: set[str] = set()
    failed = False

    def blocked_by(tid: str) -> list[str]:
        """What ``tid`` waits for: producers of its files, and readers of its rows not started."""
        out = []
        for e in graph.edges:
            if e.consumer == tid and e.via == "file" and e.producer in steps and e.producer not in finished:
                out.append(e.producer)
            if e.producer == tid and e.via == "task" and e.consumer in waiting:
                out.append(e.consumer)
        return out

    while waiting or running:
        if not failed:
            for tid in [t for t in waiting if not blocked_by(t)]:
                waiting.remove(tid)
                running.add(tid)
                on_change(steps[tid], "started")
                try:
                    await manager.start(tid, fresh=True)
                except Exception as exc:  # noqa: BLE001 - reported as the task's result
                    steps[tid].result = f"failed: {exc}"
                    running.discard(tid)
                    failed = True
                    on_change(steps[tid], "failed")
        elif waiting:
            for tid in waiting:
                steps[tid].result = "not run: an earlier task failed"
                on_change(steps[tid], "skipped")
            waiting = []
        for tid in list(running):
            task = manager.tasks[tid]
            if task.state == TaskState.STOPPED and task.reason == "input finished":
                running.discard(tid)
                finished.add(tid)
                steps[tid].result = "done"
                on_change(steps[tid], "done")
            elif task.state == TaskState.ERROR or (task.state == TaskState.STOPPED and task.transition is None):
                running.discard(tid)
                steps[tid].result = f"failed: {task.last_error or task.reason or 'stopped'}"
                failed = True
                on_change(steps[tid], "failed")
        if running:
            await asyncio.sleep(poll)
    return not failed
