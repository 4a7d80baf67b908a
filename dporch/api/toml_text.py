"""A task configuration sent as TOML text (``create_task`` with ``{"toml": "..."}``, what the web
console's "new task" form sends): the task table it holds, and the line each field is on, so an
``invalid_config`` answer can say where each issue is."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from ..orchestration.config import ConfigError, ConfigIssue

__all__ = ["task_from_toml", "field_lines", "field_line"]


def _issue(message: str, line: int | None = None) -> ConfigIssue:
    issue = ConfigIssue(None, None, "toml", message)
    issue.line = line  # type: ignore[attr-defined]
    return issue


def task_from_toml(text: str) -> dict[str, Any]:
    """The task table of ``text``: one ``[[task]]`` table, or a bare task table."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        if m:
            line: int | None = int(m.group(1))
        else:  # "at end of document": the last line with something on it
            lines = text.splitlines()
            line = max((i + 1 for i, t in enumerate(lines) if t.strip()), default=None)
        raise ConfigError([_issue(f"not valid TOML: {exc}", line)]) from None
    if "task" in data:
        tasks = data["task"]
        if not isinstance(tasks, list) or len(tasks) != 1 or not isinstance(tasks[0], dict):
            raise ConfigError([_issue("give one task: a single [[task]] table, or the task's keys without one",
                                      field_line(text, "task"))])
        data = tasks[0]
    return data


_TOKEN = re.compile(r'''
    (?P<nl>\n) | (?P<ws>[ \t\r]+) | (?P<comment>\#[^\n]*)
  | (?P<str>"""(?:[^\\]|\\.)*?"""|\'\'\'.*?\'\'\'|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')
  | (?P<punct>[\[\]{}=,.])
  | (?P<word>[^\s\[\]{}=,.\#"']+)
''', re.X | re.S)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, line) of every token but blanks and comments; newlines are tokens."""
    out: list[tuple[str, str, int]] = []
    line, pos = 1, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # an unclosed quote: the rest is one word
            out.append(("word", text[pos:], line))
            break
        kind = m.lastgroup or "word"
        if kind not in ("ws", "comment"):
            out.append((kind, m.group(), line))
        line += m.group().count("\n")
        pos = m.end()
    return out


def _join(path: list[str]) -> str:
    out = ""
    for p in path:
        out += p if p.startswith("[") or not out else "." + p
    return out


def field_lines(text: str) -> dict[str, int]:
    """Each field of a task table written in TOML -> its line (``compute_pool.max_size``,
    ``schema.columns[1].type``, ``scripts[0]``); ``[task.x]`` and ``[x]`` tables alike."""
    toks = _tokens(text)
    out: dict[str, int] = {}
    i = 0

    def key() -> list[str]:
        nonlocal i
        parts = []
        while i < len(toks) and toks[i][0] in ("word", "str"):
            parts.append(toks[i][1].strip("\"'"))
            i += 1
            if i < len(toks) and toks[i][1] == ".":
                i += 1
            else:
                break
        return parts

    def skip_nl() -> None:
        nonlocal i
        while i < len(toks) and toks[i][0] == "nl":
            i += 1

    def value(path: list[str], line: int) -> None:
        nonlocal i
        out.setdefault(_join(path), line)
        if i >= len(toks):
            return
        t = toks[i][1]
        if t == "{":
            i += 1
            while i < len(toks) and toks[i][1] != "}":
                if toks[i][1] == ",":
                    i += 1
                    continue
                kline = toks[i][2]
                parts = key()
                if not parts or i >= len(toks) or toks[i][1] != "=":
                    i += 1
                    continue
                i += 1
                value(path + parts, kline)
            i += 1
        elif t == "[":
            i += 1
            n = 0
            while True:
                skip_nl()
                if i >= len(toks) or toks[i][1] == "]":
                    i += 1
                    break
                if toks[i][1] == ",":
                    i += 1
                    continue
                value(path + [f"[{n}]"], toks[i][2])
                n += 1
        else:
            i += 1

    table: list[str] = []
    while i < len(toks):
        skip_nl()
        if i >= len(toks):
            break
        kind, t, line = toks[i]
        if t == "[":
            i += 1
            if i < len(toks) and toks[i][1] == "[":
                i += 1
            parts = key()
            table = parts[1:] if parts[:1] == ["task"] else parts
            if table:
                out.setdefault(_join(table), line)
            while i < len(toks) and toks[i][0] != "nl":
                i += 1
            continue
        parts = key()
        if parts and i < len(toks) and toks[i][1] == "=":
            i += 1
            value(table + parts, line)
        while i < len(toks) and toks[i][0] != "nl":
            i += 1
    return out


def field_line(text: str, field: str) -> int | None:
    """The line of ``field`` (or of the nearest table holding it) in ``text``; None if absent."""
    try:
        lines = field_lines(text)
    except (IndexError, ValueError):  # pragma: no cover - a best effort on text that is not TOML
        return None
    path = field
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return None
