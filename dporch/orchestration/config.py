"""Task configuration (docs/orchestration.md, "The tasks file"): `tasks.toml` with `[global]` defaults, `[[task]]` tables
and `include`d workflow files; the same structure arrives as JSON through the API.

Every problem is collected as a :class:`ConfigIssue` naming the file, the task, the field and
what is allowed; a task with issues never starts, the others still do.
"""

from __future__ import annotations

import copy
import re
import socket
import string
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ConfigIssue", "ConfigError", "SchemaColumn", "TaskConfig", "GlobalConfig", "LoadedConfig",
           "load_config", "parse_task", "deep_merge", "task_to_dict"]

SCHEMA_TYPES = {"string": "string", "number": "number", "boolean": "bool"}
_ID = re.compile(r"[\w.:-]{1,128}")
STRATEGIES = ("hash", "round_robin", "sticky")
INPUT_TYPES = ("stdin", "file", "tcp", "task")
OUTPUT_TYPES = ("stdout", "file", "tcp", "none")
FORMATS = ("csv", "json")
MODES = ("split", "merge")


@dataclass
class ConfigIssue:
    file: str | None
    task: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        task = f"task {self.task!r} " if self.task else ""
        return f"{where}{task}{self.field}: {self.message}"


class ConfigError(Exception):
    """One or more configuration issues."""

    code = "invalid_config"

    def __init__(self, issues: list[ConfigIssue]):
        super().__init__("; ".join(str(i) for i in issues))
        self.issues = issues


@dataclass
class SchemaColumn:
    name: str
    type: str = "string"  # string | number | boolean
    required: bool = False


@dataclass
class Routing:
    enabled: bool = False
    key_column: str | None = None
    strategy: str = "hash"


@dataclass
class ComputePool:
    initial_size: int = 1
    max_size: int = 1
    window_size: int = 1000
    auto_scale: bool = False
    scale_threshold: float = 0.8
    batch_size: int = 1000  # rows per actor call at most
    batch_ms: float = 5.0  # a partial batch waits at most this long
    max_in_flight: int = 4  # actor calls in flight per unit
    scale_up_seconds: float = 30.0  # load above the threshold this long -> scale up
    scale_down_seconds: float = 300.0  # load below 0.3 this long -> scale down


@dataclass
class InputConfig:
    type: str = "stdin"
    path: str | None = None
    host: str = "127.0.0.1"
    port: int | None = None
    format: str = "csv"
    buffer_size: int = 1024
    follow: bool = False
    durable: bool = False  # log what is read before processing it, so a server crash loses nothing
    task: str | None = None  # type "task": the task whose output rows this task reads
    filter: dict[str, Any] | None = None  # type "task": only rows with these column values


@dataclass
class OutputConfig:
    type: str = "stdout"
    path: str | None = None
    mode: str = "merge"
    format: str = "csv"
    buffer_size: int = 100
    auto_flush: bool = False
    host: str | None = None
    port: int | None = None


@dataclass
class CheckpointConfig:
    """Snapshots of the compute units' window state (see checkpointer.py)."""

    enabled: bool = True
    interval: float = 5.0  # seconds between checkpoints of a running task
    max_retained_rows: int = 200_000  # rows kept for a replay; more -> an early checkpoint, then backpressure


@dataclass
class ErrorHandling:
    retry_count: int = 3
    skip_on_error: bool = True
    log_errors: bool = True


@dataclass
class TaskConfig:
    id: str
    name: str = ""
    enabled: bool = True
    scripts: list[str] = field(default_factory=list)  # absolute paths once loaded
    schema: list[SchemaColumn] = field(default_factory=list)
    routing: Routing = field(default_factory=Routing)
    compute_pool: ComputePool = field(default_factory=ComputePool)
    input: InputConfig = field(default_factory=InputConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    error_handling: ErrorHandling = field(default_factory=ErrorHandling)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    params: dict[str, Any] = field(default_factory=dict)  # script parameters (docs/language.md §3.7)
    source: str | None = None  # the file it came from (None: the API)
    base_dir: str = "."  # relative script and file paths are resolved against this

    @property
    def key_column(self) -> str | None:
        return self.routing.key_column if self.routing.enabled else None

    def schema_types(self) -> dict[str, str]:
        """Schema columns and their DPLang INPUT type names."""
        return {c.name: SCHEMA_TYPES[c.type] for c in self.schema}


@dataclass
class GlobalConfig:
    default_window_size: int = 1000
    default_pool_size: int = 1
    default_pool_max_size: int = 4
    data_dirs: list[str] = field(default_factory=list)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)  # defaults of [task.checkpoint]


@dataclass
class LoadedConfig:
    global_: GlobalConfig
    tasks: list[TaskConfig]
    issues: list[ConfigIssue]


_SECTIONS = {
    "routing": Routing, "compute_pool": ComputePool, "input": InputConfig, "output": OutputConfig,
    "error_handling": ErrorHandling, "checkpoint": CheckpointConfig,
}
_TASK_KEYS = {"id", "name", "enabled", "scripts", "schema", "params"} | set(_SECTIONS)


def _type_name(t: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            dict: "a table"}.get(t, t.__name__)


class _Checker:
    def __init__(self, file: str | None, task: str | None, issues: list[ConfigIssue]):
        self.file, self.task, self.issues = file, task, issues

    def add(self, fld: str, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, self.task, fld, message))

    def section(self, name: str, cls: type, raw: Any, defaults: dict[str, Any]) -> Any:
        obj = cls(**defaults)
        if raw is None:
            return obj
        if not isinstance(raw, dict):
            self.add(name, f"must be a table, got {type(raw).__name__}")
            return obj
        fields = {f.name: f for f in obj.__dataclass_fields__.values()}
        for k, v in raw.items():
            if k not in fields:
                self.add(f"{name}.{k}", f"unknown key; allowed: {', '.join(sorted(fields))}")
                continue
            current = getattr(obj, k)
            if hasattr(current, "__dataclass_fields__"):  # a nested table
                setattr(obj, k, self.section(f"{name}.{k}", type(current), v, asdict(current)))
                continue
            want = type(current) if current is not None else None
            ok = self.typed(f"{name}.{k}", v, want, fields[k].type)
            if ok:
                setattr(obj, k, float(v) if want is float else v)
        return obj

    def typed(self, fld: str, v: Any, want: type | None, hint: Any) -> bool:
        if want is None:  # optional fields: type from the annotation text
            hint = str(hint)
            want = dict if hint.startswith("dict") else int if "int" in hint else str
        if want is float and isinstance(v, (int, float)) and not isinstance(v, bool):
            return True
        if want is int and isinstance(v, bool) or not isinstance(v, want):
            self.add(fld, f"must be {_type_name(want)}, got {v!r}")
            return False
        return True


def parse_task(raw: Any, *, file: str | None, base_dir: str, global_: GlobalConfig,
               issues: list[ConfigIssue]) -> TaskConfig | None:
    """One task table (TOML or API JSON) -> TaskConfig, appending every issue found."""
    if not isinstance(raw, dict):
        issues.append(ConfigIssue(file, None, "task", "must be a table"))
        return None
    tid = raw.get("id")
    chk = _Checker(file, tid if isinstance(tid, str) else None, issues)
    if not isinstance(tid, str) or not tid.strip():
        chk.add("id", "required: a non-empty string")
        return None
    if not _ID.fullmatch(tid) or set(tid) <= {"."}:
        chk.task = None
        chk.add("id", f"{tid[:40]!r} is not a task id: use up to 128 letters, digits, '-', '_', '.' or ':'")
        return None
    for k in raw:
        if k not in _TASK_KEYS:
            chk.add(k, f"unknown key; allowed: {', '.join(sorted(_TASK_KEYS))}")
    task = TaskConfig(id=tid, source=file, base_dir=base_dir)
    if "name" in raw and chk.typed("name", raw["name"], str, str):
        task.name = raw["name"]
    if "enabled" in raw and chk.typed("enabled", raw["enabled"], bool, bool):
        task.enabled = raw["enabled"]
    scripts = raw.get("scripts")
    if not isinstance(scripts, list) or not scripts or not all(isinstance(s, str) and s for s in scripts):
        chk.add("scripts", "required: a non-empty list of script paths")
    elif any("\x00" in s for s in scripts):
        chk.add("scripts", "a script path must not contain a NUL character")
    else:
        task.scripts = [str((Path(base_dir) / s).resolve()) if not Path(s).is_absolute() else s for s in scripts]
    task.schema = _schema(raw.get("schema"), chk)
    task.params = _params(raw.get("params"), chk)
    pool_defaults = {"initial_size": global_.default_pool_size, "max_size": max(global_.default_pool_size,
                     global_.default_pool_max_size), "window_size": global_.default_window_size}
    task.routing = chk.section("routing", Routing, raw.get("routing"), {})
    task.compute_pool = chk.section("compute_pool", ComputePool, raw.get("compute_pool"), pool_defaults)
    task.input = chk.section("input", InputConfig, raw.get("input"), {})
    task.output = chk.section("output", OutputConfig, raw.get("output"), {})
    task.error_handling = chk.section("error_handling", ErrorHandling, raw.get("error_handling"), {})
    task.checkpoint = chk.section("checkpoint", CheckpointConfig, raw.get("checkpoint"), asdict(global_.checkpoint))
    for section in (task.input, task.output):
        if isinstance(section.path, str) and "\x00" in section.path:
            chk.add(f"{'input' if section is task.input else 'output'}.path", "must not contain a NUL character")
            section.path = None
    if task.input.path and not Path(task.input.path).is_absolute():
        task.input.path = str((Path(base_dir) / task.input.path).resolve())
    if task.output.path and not Path(task.output.path).is_absolute():
        task.output.path = str(Path(base_dir) / task.output.path)
    _validate(task, chk)
    return task


def _params(raw: Any, chk: _Checker) -> dict[str, Any]:
    """``params = { fast = 10, mode = "ema" }``: values for the scripts' -- PARAMS -- (checked
    against the declared types when the scripts compile)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        chk.add("params", f"must be a table of parameter values, got {raw!r}")
        return {}
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if isinstance(v, (str, int, float, bool)):
            out[k] = v
        else:
            chk.add(f"params.{k}", f"must be a number, a string or true/false, got {v!r}")
    return out


def _schema(raw: Any, chk: _Checker) -> list[SchemaColumn]:
    if raw is None:
        return []
    cols = raw.get("columns") if isinstance(raw, dict) else None
    if not isinstance(cols, list):
        chk.add("schema.columns", "must be a list of {name, type, required} tables")
        return []
    out: list[SchemaColumn] = []
    for i, c in enumerate(cols):
        fld = f"schema.columns[{i}]"
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            chk.add(fld, "needs a name (a string)")
            continue
        extra = set(c) - {"name", "type", "required"}
        if extra:
            chk.add(f"{fld}.{sorted(extra)[0]}", "unknown key; allowed: name, type, required")
        t = c.get("type", "string")
        if not isinstance(t, str) or t not in SCHEMA_TYPES:
            chk.add(f"{fld}.type", f"unknown type {t!r}; allowed: {', '.join(SCHEMA_TYPES)}")
            t = "string"
        req = c.get("required", False)
        if not isinstance(req, bool):
            chk.add(f"{fld}.required", f"must be true or false, got {req!r}")
            req = False
        if any(o.name == c["name"] for o in out):
            chk.add(fld, f"duplicate column {c['name']!r}")
        out.append(SchemaColumn(c["name"], t, req))
    return out


def _validate(task: TaskConfig, chk: _Checker) -> None:
    r, p, i, o = task.routing, task.compute_pool, task.input, task.output
    if r.strategy not in STRATEGIES:
        chk.add("routing.strategy", f"unknown strategy {r.strategy!r}; allowed: {', '.join(STRATEGIES)}")
    if r.enabled:
        if not r.key_column:
            chk.add("routing.key_column", "required when routing is enabled")
        elif task.schema and r.key_column not in {c.name for c in task.schema}:
            chk.add("routing.key_column", f"{r.key_column!r} is not a schema column "
                                          f"({', '.join(c.name for c in task.schema)})")
    if p.initial_size < 1:
        chk.add("compute_pool.initial_size", "must be at least 1")
    if p.max_size < p.initial_size:
        chk.add("compute_pool.max_size", f"must be at least initial_size ({p.initial_size})")
    if p.window_size < 1:
        chk.add("compute_pool.window_size", "must be at least 1")
    if not 0 < p.scale_threshold <= 1:
        chk.add("compute_pool.scale_threshold", "must be in (0, 1]")
    if p.batch_size < 1 or p.max_in_flight < 1 or p.batch_ms < 0:
        chk.add("compute_pool", "batch_size and max_in_flight must be at least 1, batch_ms not negative")
    if i.type not in INPUT_TYPES:
        chk.add("input.type", f"unknown type {i.type!r}; allowed: {', '.join(INPUT_TYPES)}")
    if i.format not in FORMATS:
        chk.add("input.format", f"unknown format {i.format!r}; allowed: {', '.join(FORMATS)}")
    if i.type == "file" and not i.path:
        chk.add("input.path", "required for a file input")
    if i.type == "file" and i.path and i.follow and any(c in i.path for c in "{*?["):
        chk.add("input.follow", "a followed file is one file, not a pattern")
    if i.type == "task":
        if not isinstance(i.task, str) or not i.task:
            chk.add("input.task", "required for a task input: the id of the task whose output rows to read")
        if i.filter is not None and (not isinstance(i.filter, dict) or
                                     not all(isinstance(v, (str, int, float, bool)) for v in i.filter.values())):
            chk.add("input.filter", "a table of column = value (a string, number or boolean)")
        if i.durable:
            chk.add("input.durable", "a task input replays from its producer: durable is for tcp and stdin inputs")
    if i.type == "tcp" and not isinstance(i.port, int):
        chk.add("input.port", "required for a tcp input (an integer)")
    elif isinstance(i.port, int) and not 0 <= i.port <= 65535:
        chk.add("input.port", f"a port is 0 to 65535 (0: any free port), got {i.port}")
    if isinstance(o.port, int) and not 1 <= o.port <= 65535:
        chk.add("output.port", f"a port is 1 to 65535, got {o.port}")
    for fld, value in (("input.host", i.host), ("output.host", o.host)):
        if isinstance(value, str) and "\x00" in value:
            chk.add(fld, "must not contain a NUL character")
    if o.type not in OUTPUT_TYPES:
        chk.add("output.type", f"unknown type {o.type!r}; allowed: {', '.join(OUTPUT_TYPES)}")
    if o.format not in FORMATS:
        chk.add("output.format", f"unknown format {o.format!r}; allowed: {', '.join(FORMATS)}")
    if o.mode not in MODES:
        chk.add("output.mode", f"unknown mode {o.mode!r}; allowed: {', '.join(MODES)}")
    if o.type == "file" and not o.path:
        chk.add("output.path", "required for a file output (a path template such as ./output/{stock_code}.csv)")
    if o.type == "file" and o.path:
        _check_output_template(chk, o)
    if o.type == "tcp" and (not o.host or not isinstance(o.port, int)):
        chk.add("output", "host and port are required for a tcp output")
    if o.buffer_size < 1 or i.buffer_size < 1:
        chk.add("output.buffer_size", "buffer sizes must be at least 1")
    eh = task.error_handling
    if eh.retry_count < 0:
        chk.add("error_handling.retry_count", "must not be negative")
    ck = task.checkpoint
    if ck.interval <= 0:
        chk.add("checkpoint.interval", "must be a positive number of seconds")
    if ck.max_retained_rows < p.batch_size:
        chk.add("checkpoint.max_retained_rows", f"must be at least compute_pool.batch_size ({p.batch_size})")
    if i.durable and i.type == "file":
        chk.add("input.durable", "a file can be read again: durable is for tcp and stdin inputs")


def _check_output_template(chk: _Checker, o: OutputConfig) -> None:
    """A merge output is one file, so its path may only use the task's fields; a split output
    may also name the key and the script's output columns."""
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(o.path or "") if f is not None}
    except ValueError as exc:
        chk.add("output.path", f"not a valid path template ({exc}); write a literal brace as {{{{ or }}}}")
        return
    if "" in names or any(not n.isidentifier() for n in names):
        chk.add("output.path", "template fields are names such as {stock_code}; "
                               "positional or indexed fields ({}, {0}, {a.b}) are not allowed")
    elif o.mode == "merge" and names - {"task_id", "key"}:
        extra = ", ".join("{" + n + "}" for n in sorted(names - {"task_id", "key"}))
        chk.add("output.path", f"a merge output is one file, so {extra} cannot vary in its path; "
                               "set output.mode = \"split\" for one file per value")


def check_ports(task: TaskConfig, taken: set[int], held: tuple[str, int] | None = None) -> list[ConfigIssue]:
    """The task's TCP input port must be free (and not claimed by another task); ``held``: the
    address the task's current version listens on, which it hands over."""
    i = task.input
    if i.type != "tcp" or not isinstance(i.port, int):
        return []
    issue = ConfigIssue(task.source, task.id, "input.port", "")
    if i.port in taken:
        issue.message = f"port {i.port} is used by another task"
        return [issue]
    if i.port == 0 or held == (i.host, i.port):
        return []
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((i.host, i.port))
        except OSError as exc:
            issue.message = f"cannot listen on {i.host}:{i.port}: {exc.strerror}"
            return [issue]
    return []


def load_config(path: str | Path) -> LoadedConfig:
    """Read a tasks.toml and its includes. Syntax errors raise ConfigError; task issues are
    returned (tasks with issues are left out of ``tasks``)."""
    path = Path(path)
    issues: list[ConfigIssue] = []
    raw = _read_toml(path, issues)
    g = raw.get("global", {}) if raw else {}
    chk = _Checker(str(path), None, issues)
    global_ = chk.section("global", GlobalConfig, g, {})
    global_.data_dirs = [str((path.parent / d).resolve()) for d in global_.data_dirs]
    tables: list[tuple[Any, Path]] = [(t, path) for t in (raw.get("task", []) if raw else [])]
    for inc in (raw.get("include", []) if raw else []):
        inc_path = (path.parent / inc).resolve()
        inc_raw = _read_toml(inc_path, issues)
        for k in inc_raw:
            if k != "task":
                issues.append(ConfigIssue(str(inc_path), None, k, "an included file holds only [[task]] tables"))
        tables += [(t, inc_path) for t in inc_raw.get("task", [])]
    for k in (raw or {}):
        if k not in ("global", "task", "include"):
            issues.append(ConfigIssue(str(path), None, k, "unknown key; allowed: global, task, include"))
    tasks: list[TaskConfig] = []
    seen: set[str] = set()
    for t, src in tables:
        before = len(issues)
        task = parse_task(t, file=str(src), base_dir=str(src.parent), global_=global_, issues=issues)
        if task is None:
            continue
        if task.id in seen:
            issues.append(ConfigIssue(str(src), task.id, "id", "duplicate task id"))
            continue
        seen.add(task.id)
        if len(issues) == before:
            tasks.append(task)
    return LoadedConfig(global_, tasks, issues)


def _read_toml(path: Path, issues: list[ConfigIssue]) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        issues.append(ConfigIssue(str(path), None, "file", "not found"))
    except tomllib.TOMLDecodeError as exc:
        issues.append(ConfigIssue(str(path), None, "syntax", str(exc)))
    return {}


def deep_merge(base: dict, updates: dict) -> dict:
    """``updates`` merged into a copy of ``base`` (tables recursively)."""
    out = copy.deepcopy(base)
    for k, v in updates.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def task_to_dict(task: TaskConfig) -> dict[str, Any]:
    """The task as the TOML/JSON structure (for the API and the registry)."""
    d = asdict(task)
    d["schema"] = {"columns": d["schema"]}
    d.pop("source")
    d.pop("base_dir")
    if not d["params"]:
        d.pop("params")
    for section in _SECTIONS:  # unset optional fields are left out (they are the defaults)
        d[section] = {k: v for k, v in d[section].items() if v is not None}
    return d
