"""Shared presentation for the task commands and the interactive client: status colours and
labels (SEED §7.1.3), task tables, output tables, reading task files and data files."""

from __future__ import annotations

import csv
import json
import tomllib
from pathlib import Path
from typing import Any, Iterator

from rich.table import Table

__all__ = ["STATUS_LABEL", "status_text", "tasks_table", "task_panel", "rows_table", "read_task_file",
           "read_rows", "parse_filter"]

STATUS_LABEL = {"created": ("已创建", "cyan"), "ready": ("就绪", "cyan"), "running": ("运行中", "green"),
                "paused": ("已暂停", "yellow"), "stopped": ("已停止", "white"), "error": ("错误", "red")}


def status_text(status: str) -> str:
    label, colour = STATUS_LABEL.get(status, (status, "white"))
    return f"[{colour}]{label}[/{colour}]"


def tasks_table(tasks: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold")
    for col in ("ID", "名称", "状态", "计算元池", "已处理行数"):
        table.add_column(col, justify="right" if col == "已处理行数" else "left")
    for t in tasks:
        pool = f"{t['compute_pool_size']}/{t['max_pool_size']}"
        table.add_row(t["id"], t.get("name") or "", status_text(t["status"]), pool, f"{t['processed_count']:,}")
    return table


def task_panel(info: dict[str, Any]) -> str:
    stats, cfg = info["stats"], info["config"]
    scripts = ", ".join(Path(s).name for s in cfg.get("scripts", []))
    lines = [
        "任务详情:",
        f"  ID: {info['id']}",
        f"  名称: {info.get('name') or ''}",
        f"  状态: {status_text(info['status'])}",
        f"  脚本: {scripts}",
        f"  计算元池: {stats['compute_pool_size']}个活跃 (最大{stats['max_pool_size']})",
        f"  已处理: {stats['processed_count']:,} 行",
        f"  错误: {stats['error_count']:,} 行",
        f"  负载率: {stats['load_rate'] * 100:.0f}%",
        f"  吞吐: {stats['rows_per_second']:,} 行/秒, 延迟 p99 {stats['latency_ms_p99']} ms",
    ]
    if stats.get("last_error"):
        lines.append(f"  [red]最近错误: {stats['last_error']}[/red]")
    return "\n".join(lines)


def rows_table(rows: list[dict[str, Any]], title: str | None = None) -> Table:
    table = Table(title=title, box=None, header_style="bold")
    columns = list(rows[0]) if rows else []
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*["" if r.get(c) is None else str(r.get(c)) for c in columns])
    return table


def read_task_file(path: Path) -> dict[str, Any]:
    """A task definition (TOML with one [[task]] or a bare task table, or JSON); relative
    script and file paths become absolute (they are relative to the file)."""
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    if "task" in data:
        tasks = data["task"]
        if not isinstance(tasks, list) or len(tasks) != 1:
            raise ValueError(f"{path} must define exactly one [[task]]")
        data = tasks[0]
    base = path.resolve().parent
    data["scripts"] = [str((base / s).resolve()) for s in data.get("scripts", [])]
    for section in ("input", "output"):
        p = data.get(section, {}).get("path")
        if p and not Path(p).is_absolute():
            data[section]["path"] = str((base / p).resolve())
    return data


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a CSV file (header first) or of JSON lines, as dicts."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        first = f.readline()
        f.seek(0)
        if first.lstrip().startswith("{"):
            for line in f:
                if line.strip():
                    yield json.loads(line)
        else:
            yield from csv.DictReader(f)


def parse_filter(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep:
            raise ValueError(f"filters are column=value, got {item!r}")
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out
