"""Shared presentation for the task commands and the interactive client: status labels and
colours, task tables, output tables (numbers without float noise, no column ever cut), config
problems one per line, and reading task files and data files with precise errors."""

from __future__ import annotations

import csv
import json
import math
import tomllib
from pathlib import Path
from typing import Any, Iterator

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from ..api.client import ConfigProblem, DporchAPIError
from .messages import Messages, UserError, file_errors

__all__ = ["STATUS_COLOUR", "status_text", "tasks_table", "task_panel", "rows_table", "print_table", "format_cell",
           "format_number", "config_lines", "read_table", "read_task_file", "read_rows", "count_rows", "parse_filter"]

STATUS_COLOUR = {"created": "cyan", "ready": "cyan", "running": "green", "paused": "yellow", "stopped": "white",
                 "error": "red"}


def status_text(status: str, msgs: Messages) -> str:
    """A state as coloured rich markup, in the session's language."""
    colour = STATUS_COLOUR.get(status, "white")
    label = msgs(f"status.{status}") if status in STATUS_COLOUR else escape(status)
    return f"[{colour}]{label}[/{colour}]"


def tasks_table(tasks: list[dict[str, Any]], msgs: Messages) -> Table:
    table = Table(box=None, header_style="bold")
    for key in ("col.id", "col.name", "col.status", "col.pool", "col.processed"):
        table.add_column(msgs(key), justify="right" if key == "col.processed" else "left", overflow="fold")
    for t in tasks:
        pool = f"{t['compute_pool_size']}/{t['max_pool_size']}"
        table.add_row(escape(t["id"]), escape(t.get("name") or ""), status_text(t["status"], msgs), pool,
                      f"{t['processed_count']:,}")
    return table


def task_panel(info: dict[str, Any], msgs: Messages) -> str:
    """A task's details as rich markup (values escaped: names may hold brackets)."""
    stats, cfg = info["stats"], info["config"]
    scripts = ", ".join(Path(s).name for s in cfg.get("scripts", []))
    lines = [
        msgs("panel.title"),
        msgs("panel.id", value=escape(info["id"])),
        msgs("panel.name", value=escape(info.get("name") or "")),
        msgs("panel.status", value=status_text(info["status"], msgs)),
        msgs("panel.scripts", value=escape(scripts)),
        msgs("panel.input", value=escape(str(stats.get("input") or cfg.get("input", {}).get("type", "")))),
        msgs("panel.pool", active=stats["compute_pool_size"], max=stats["max_pool_size"]),
        msgs("panel.processed", count=stats["processed_count"]),
        msgs("panel.errors", count=stats["error_count"]),
        msgs("panel.load", percent=stats["load_rate"] * 100),
        msgs("panel.throughput", rate=format_number(stats["rows_per_second"]),
             p99=format_number(stats["latency_ms_p99"])),
    ]
    if stats.get("last_error"):
        lines.append("[red]" + msgs("panel.last_error", value=escape(str(stats["last_error"]))) + "[/red]")
    return "\n".join(lines)


def format_number(v: float) -> str:
    """A number for people: integers as they are; others rounded to 6 decimals (6 significant
    digits below 1) with trailing zeros dropped, so 5.7679999999999945 reads 5.768."""
    if isinstance(v, int) or not math.isfinite(v):
        return str(v) if isinstance(v, int) else ("NaN" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    if abs(v) >= 1e15 or abs(v) < 1:
        return f"{v:.6g}"
    return f"{v:.6f}".rstrip("0").rstrip(".")


def format_cell(v: Any) -> str:
    """One output value as text: null empty, booleans as DPLang writes them, numbers via
    :func:`format_number`, arrays as JSON of formatted numbers."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return format_number(v)
    if isinstance(v, list):
        return "[" + ", ".join(format_cell(x) if not isinstance(x, str) else json.dumps(x, ensure_ascii=False)
                               for x in v) + "]"
    return str(v)


def _numeric(rows: list[dict[str, Any]], column: str) -> bool:
    values = [r.get(column) for r in rows if r.get(column) is not None]
    return bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def rows_table(rows: list[dict[str, Any]], title: str | None = None) -> Table:
    """Output rows; cells fold rather than being cut when the table is wider than the screen."""
    table = Table(title=escape(title) if title else None, box=None, header_style="bold")
    columns = list(rows[0]) if rows else []
    for c in columns:
        table.add_column(escape(c), overflow="fold", justify="right" if _numeric(rows, c) else "left")
    for r in rows:
        table.add_row(*[escape(format_cell(r.get(c))) for c in columns])
    return table


def print_table(console: Console, table: Table) -> None:
    """On a terminal the table fits its width (cells fold); into a pipe or a file it keeps its
    natural width, so that no column is cut."""
    if console.is_terminal:
        console.print(table)
        return
    natural = Measurement.get(console, console.options.update_width(1 << 16), table).maximum
    wide = Console(file=console.file, width=max(console.width, natural), no_color=console.no_color,
                   force_terminal=False, highlight=False)
    wide.print(table)


def config_lines(exc: DporchAPIError, source: str, msgs: Messages, task_id: str | None = None) -> list[str]:
    """An invalid_config error as a header and one line per problem, naming the field; ``source``
    replaces the server's ``<api>`` (the file the user gave, or the task for an update)."""
    issues: list[ConfigProblem] = exc.issues or [ConfigProblem("", exc.message)]
    head = (msgs("config_update_header", task_id=task_id, count=len(issues)) if task_id is not None
            else msgs("config_header", source=source, count=len(issues)))
    lines = [head]
    for i in issues:
        where = f"{i.file}: " if i.file else ""
        lines.append(msgs("config_issue", field=where + (i.field or "?"), message=i.message))
    return lines


def read_table(path: Path) -> dict[str, Any]:
    """A TOML (or, for .json, JSON) file holding one table, with precise errors."""
    with file_errors(path):
        text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise UserError("file_bad_json", path=str(path), line=getattr(exc, "lineno", 1), reason=str(exc)) from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UserError("file_bad_toml", path=str(path), reason=str(exc)) from None
    if not isinstance(data, dict):
        raise UserError("file_not_table", path=str(path))
    return data


def read_task_file(path: Path) -> dict[str, Any]:
    """A task definition (TOML with one [[task]] or a bare task table, or JSON); relative
    script and file paths become absolute (they are relative to the file)."""
    data = read_table(path)
    if "task" in data:
        tasks = data["task"]
        if not isinstance(tasks, list):
            raise UserError("task_file_shape", path=str(path))
        if len(tasks) != 1:
            raise UserError("task_file_count", path=str(path), count=len(tasks))
        data = tasks[0]
        if not isinstance(data, dict):
            raise UserError("task_file_shape", path=str(path))
    base = path.resolve().parent
    scripts = data.get("scripts")
    if isinstance(scripts, list):
        data["scripts"] = [str((base / s).resolve()) if isinstance(s, str) else s for s in scripts]
    for section in ("input", "output"):
        table = data.get(section)
        p = table.get("path") if isinstance(table, dict) else None
        if isinstance(p, str) and p and not Path(p).is_absolute():
            table["path"] = str((base / p).resolve())
    return data


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a CSV file (header first) or of JSON lines, as dicts; a missing, unreadable or
    malformed file raises :class:`UserError` naming the file (and the line)."""
    with file_errors(path), open(path, encoding="utf-8-sig", newline="") as f:
        yield from _parse_rows(f, path)


def _parse_rows(f: Any, path: Path) -> Iterator[dict[str, Any]]:
    first = f.readline()
    f.seek(0)
    if not first.lstrip().startswith("{"):
        yield from csv.DictReader(f)
        return
    for number, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise UserError("file_bad_json", path=str(path), line=number, reason=str(exc)) from None
        if not isinstance(row, dict):
            raise UserError("file_bad_json", path=str(path), line=number, reason=type(row).__name__)
        yield row


def count_rows(path: Path) -> int:
    """The rows of a data file, reading it once through: every error shows before any is sent."""
    return sum(1 for _ in read_rows(path))


def parse_filter(items: list[str], types: dict[str, str | None] | None = None) -> dict[str, Any]:
    """``column=value`` items as a subscription filter. A value is typed by its column's input
    type when the task has one (``stock_code=600000`` stays text for a string column), else as
    JSON when it parses."""
    out: dict[str, Any] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise UserError("filter_syntax", item=item)
        kind = (types or {}).get(k)
        if kind == "string":
            out[k] = v
            continue
        try:
            value = json.loads(v)
        except ValueError:
            value = v
        if kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise UserError("filter_type", column=k, kind="number", item=item)
        if kind == "bool" and not isinstance(value, bool):
            raise UserError("filter_type", column=k, kind="true/false", item=item)
        out[k] = value
    return out
