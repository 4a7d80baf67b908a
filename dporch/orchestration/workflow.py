"""Workflows: the graph of tasks that feed tasks, and what is out of date (Snakemake's rules).

**The graph.** A task depends on another when its input is that task (``[task.input] type =
"task"``), or when its file input path (``{field}`` wildcards and ``*``/``?``/``[...]`` globs)
matches the other's output path template: the two patterns, each with its fields as ``*``,
match one another. A cycle, two tasks writing the same output pattern, and an input wildcard the
producer's template does not have are configuration errors naming the tasks and fields.

**Up to date.** A batch task (a file input that is not followed, or a task input from a batch
task) records, when a run finishes, the fingerprint of its scripts and packages and of its
configuration, the input files with their modification times, and the files it published.
It is up to date while all of these still hold and no task upstream runs again; otherwise the
reasons say why it runs: never run, output missing, input newer, script changed, config
changed, upstream runs, forced.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import string
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from .config import ConfigIssue, TaskConfig
from .inputs import input_files, pattern_glob

if TYPE_CHECKING:
    from ..lang.program import Program

__all__ = ["Edge", "Graph", "build_graph", "fingerprints", "Completion", "out_of_date", "is_batch",
           "topological", "layout", "render_text", "render_dot"]


def fields_of(template: str) -> set[str]:
    try:
        return {f for _, f, _, _ in string.Formatter().parse(template) if f}
    except ValueError:
        return set()


def is_batch(cfg: TaskConfig, configs: dict[str, TaskConfig] | None = None) -> bool:
    """A task that reads a finite input and so can finish: a file not followed, or the output
    of a batch task."""
    if cfg.input.type == "file":
        return not cfg.input.follow
    if cfg.input.type == "task" and configs is not None:
        up = configs.get(cfg.input.task or "")
        return up is not None and up is not cfg and is_batch(up, {k: v for k, v in configs.items() if k != cfg.id})
    return False


@dataclass(frozen=True)
class Edge:
    producer: str
    consumer: str
    via: str  # "task" (rows in process) or "file" (an output path pattern the input matches)


@dataclass
class Graph:
    tasks: dict[str, TaskConfig]
    edges: list[Edge] = field(default_factory=list)

    def upstream(self, tid: str) -> list[str]:
        return sorted({e.producer for e in self.edges if e.consumer == tid})

    def downstream(self, tid: str) -> list[str]:
        return sorted({e.consumer for e in self.edges if e.producer == tid})

    def closure(self, targets: Iterable[str]) -> set[str]:
        """The targets and everything they depend on."""
        seen: set[str] = set()
        todo = list(targets)
        while todo:
            t = todo.pop()
            if t not in seen:
                seen.add(t)
                todo += self.upstream(t)
        return seen


def _star(template: str) -> str:
    """A path pattern with every wildcard as ``*``, absolute, symlinks resolved."""
    return os.path.realpath(pattern_glob(template))


def _overlap(a: str, b: str) -> bool:
    """Whether two patterns (fields as ``*``) can name the same file."""
    return fnmatch.fnmatchcase(a, b) or fnmatch.fnmatchcase(b, a)


def build_graph(configs: list[TaskConfig]) -> tuple[Graph, list[ConfigIssue]]:
    """The graph of ``configs``, and every issue with it (cycles, clashing outputs, unknown
    upstream tasks, wildcards a producer does not provide)."""
    tasks = {c.id: c for c in configs}
    graph = Graph(tasks)
    issues: list[ConfigIssue] = []
    outputs = {c.id: c.output.path for c in configs if c.output.type == "file" and c.output.path}
    stars = {tid: _star(path) for tid, path in outputs.items()}
    ids = sorted(outputs)
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            if _overlap(stars[a], stars[b]):
                issues.append(ConfigIssue(tasks[b].source, b, "output.path",
                                          f"{outputs[b]} can name the same files as task {a!r}'s output {outputs[a]}: "
                                          "two tasks must not write the same files"))
    for c in configs:
        if c.input.type == "task":
            if c.input.task not in tasks:
                issues.append(ConfigIssue(c.source, c.id, "input.task",
                                          f"no task {c.input.task!r} to read from (tasks: {', '.join(sorted(tasks))})"))
            elif c.input.task == c.id:
                issues.append(ConfigIssue(c.source, c.id, "input.task", "a task cannot read its own output"))
            else:
                graph.edges.append(Edge(c.input.task, c.id, "task"))
        elif c.input.type == "file" and c.input.path:
            wanted = _star(c.input.path)
            for pid, out in outputs.items():
                if pid != c.id and _overlap(wanted, stars[pid]):
                    missing = sorted(fields_of(c.input.path) - fields_of(out))
                    if missing:
                        issues.append(ConfigIssue(
                            c.source, c.id, "input.path",
                            f"wildcard(s) {', '.join('{' + m + '}' for m in missing)} of {c.input.path} are not in "
                            f"the output path of task {pid!r} ({out}), which makes these files"))
                    graph.edges.append(Edge(pid, c.id, "file"))
    cycle = _cycle(graph)
    if cycle:
        first = tasks[cycle[0]]
        issues.append(ConfigIssue(first.source, cycle[0], "input",
                                  "tasks feed each other in a cycle: " + " -> ".join(cycle + [cycle[0]])))
    return graph, issues


def _cycle(graph: Graph) -> list[str]:
    """One cycle of the graph (task ids in order), or [] (iterative depth-first search)."""
    colour: dict[str, int] = {}
    for start in sorted(graph.tasks):
        if colour.get(start):
            continue
        path: list[str] = []
        stack = [(start, iter(graph.downstream(start)))]
        colour[start] = 1
        path.append(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                colour[node] = 2
            elif colour.get(child) == 1:
                return path[path.index(child):]
            elif not colour.get(child):
                colour[child] = 1
                path.append(child)
                stack.append((child, iter(graph.downstream(child))))
    return []


def topological(graph: Graph, only: set[str] | None = None) -> list[str]:
    """Task ids with every producer before its consumers (ties by id)."""
    nodes = set(graph.tasks) if only is None else set(only)
    indegree = {n: sum(1 for u in graph.upstream(n) if u in nodes) for n in nodes}
    ready = sorted(n for n, d in indegree.items() if d == 0)
    out = []
    while ready:
        n = ready.pop(0)
        out.append(n)
        for d in graph.downstream(n):
            if d in indegree:
                indegree[d] -= 1
                if indegree[d] == 0:
                    ready.append(d)
                    ready.sort()
    return out


def layout(graph: Graph) -> dict[str, list[dict[str, Any]]]:
    """The graph ready to draw left to right, so that the web console and the dashboard page
    show the same picture: ``nodes`` as ``{id, kind, layer, row}`` (``layer``: the longest path
    to the task from a task that reads no task, so every edge points right; ``row``: its place
    in the layer, by the mean row of its producers, to keep edges short; tasks linked to none
    below all the others, where no edge passes) and ``edges`` as ``{from, to, via}``. A cycle,
    refused elsewhere, still gets a layout: an edge from a task not placed yet is left out of
    the layering."""
    order = topological(graph)
    order += sorted(set(graph.tasks) - set(order))
    ups = {n: graph.upstream(n) for n in order}
    linked = {e.producer for e in graph.edges} | {e.consumer for e in graph.edges}
    layer: dict[str, int] = {}
    for n in order:
        layer[n] = max((layer[u] + 1 for u in ups[n] if u in layer), default=0)
    row: dict[str, int] = {}

    def place(n: str) -> tuple[float, str]:
        above = [row[u] for u in ups[n] if u in row]
        return (sum(above) / len(above) if above else 0, n)

    for depth in range(max(layer.values(), default=-1) + 1):
        for i, n in enumerate(sorted((n for n in order if layer[n] == depth and n in linked), key=place)):
            row[n] = i
    below = max(row.values(), default=-1) + 1
    for i, n in enumerate(sorted(n for n in order if n not in linked)):
        row[n] = below + i
    nodes = [{"id": n, "kind": "batch" if is_batch(graph.tasks[n], graph.tasks) else "realtime",
              "layer": layer[n], "row": row[n]} for n in sorted(order, key=lambda n: (layer[n], row[n]))]
    edges = [{"from": e.producer, "to": e.consumer, "via": e.via}
             for e in sorted(graph.edges, key=lambda e: (e.producer, e.consumer, e.via))]
    return {"nodes": nodes, "edges": edges}


def render_text(graph: Graph) -> str:
    lines = []
    for tid in topological(graph):
        cfg = graph.tasks[tid]
        kind = "batch" if is_batch(cfg, graph.tasks) else "realtime"
        ups = [f"{e.producer} ({e.via})" for e in graph.edges if e.consumer == tid]
        lines.append(f"{tid} [{kind}]" + (f" <- {', '.join(ups)}" if ups else ""))
    return "\n".join(lines)


def render_dot(graph: Graph) -> str:
    lines = ["digraph workflow {", "  rankdir=LR;", "  node [shape=box];"]
    for tid in topological(graph):
        shape = "box" if is_batch(graph.tasks[tid], graph.tasks) else "ellipse"
        lines.append(f"  {json.dumps(tid)} [shape={shape}];")
    for e in graph.edges:
        style = "solid" if e.via == "task" else "dashed"
        lines.append(f"  {json.dumps(e.producer)} -> {json.dumps(e.consumer)} [style={style}];")
    lines.append("}")
    return "\n".join(lines)


# -- up to date ------------------------------------------------------------------------------------
#: configuration that changes what a task computes (not how fast: pools, buffers, checkpoints)
_MEANINGFUL = ("schema", "routing", "input", "output", "error_handling", "params")


def fingerprints(cfg: TaskConfig, programs: list["Program"]) -> tuple[str, str]:
    """(scripts and packages, configuration) fingerprints of a task."""
    scripts = hashlib.sha256()
    for p in programs:
        scripts.update(p.script.source.encode() + b"\x1e")
        for name, pkg in sorted(p.packages.items()):
            scripts.update(name.encode() + b"\x1f" + _package_text(pkg).encode() + b"\x1e")
    conf = asdict(cfg)
    meaningful = {k: conf.get(k) for k in _MEANINGFUL}
    for section in ("input", "output"):  # the same file however the tasks file was named
        if meaningful[section].get("path"):
            meaningful[section]["path"] = os.path.abspath(meaningful[section]["path"])
    config = hashlib.sha256(json.dumps(meaningful, sort_keys=True, default=str).encode())
    return scripts.hexdigest(), config.hexdigest()


def _package_text(pkg: Any) -> str:
    path = getattr(pkg.info, "file", None)
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, TypeError):
        return repr(pkg.tree)


@dataclass
class Completion:
    """What a finished run of a batch task recorded."""

    scripts: str
    config: str
    inputs: dict[str, int]  # input file -> modification time (ns)
    outputs: list[str]  # the files it published
    finished: float = field(default_factory=time.time)

    @classmethod
    def of(cls, cfg: TaskConfig, programs: list["Program"], outputs: list[str]) -> "Completion":
        scripts, config = fingerprints(cfg, programs)
        return cls(scripts, config, _input_times(cfg), outputs)


def _input_times(cfg: TaskConfig) -> dict[str, int]:
    if cfg.input.type != "file" or not cfg.input.path:
        return {}
    out = {}
    for p in input_files(cfg.input.path):
        try:
            out[p] = os.stat(p).st_mtime_ns
        except OSError:
            continue
    return out


def out_of_date(cfg: TaskConfig, programs: list["Program"], record: dict[str, Any] | None, *,
                upstream_runs: bool = False, forced: bool = False) -> list[str]:
    """Why the task must run ([] when it is up to date)."""
    if forced:
        return ["forced"]
    if record is None:
        return ["never run"]
    reasons = []
    scripts, config = fingerprints(cfg, programs)
    if any(not os.path.exists(p) for p in record.get("outputs", [])):
        reasons.append("output missing")
    inputs = _input_times(cfg)
    newest_output = max((os.stat(p).st_mtime_ns for p in record.get("outputs", []) if os.path.exists(p)), default=0)
    if inputs != record.get("inputs", {}) or any(t > newest_output > 0 for t in inputs.values()):
        reasons.append("input newer")
    if scripts != record.get("scripts"):
        reasons.append("script changed")
    if config != record.get("config"):
        reasons.append("config changed")
    if upstream_runs:
        reasons.append("upstream runs")
    return reasons
