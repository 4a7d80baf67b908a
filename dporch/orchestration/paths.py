"""Where tasks may read and write.

One rule for every path a task touches (its scripts, its input file, its output paths): the
path, symlinks resolved, must lie inside the folders allowed for the task's origin.

* A task of the tasks file (written by the server's operator) may use the project folders: the
  working directory and the one holding the tasks file.
* A task created through the API reads inside the project folders and the data folders, and
  writes inside the output folder.
* ``--allow-path FOLDER`` adds a folder for both; nothing is ever written inside the state
  directory.

Output templates are checked with their ``{column}`` fields filled in: a value never contains a
separator or is ``.``/``..`` (see :func:`~dporch.engine.writers.safe_file_name`), so the files a
template makes stay where the template says. Packages are found next to scripts or in folders
the operator sets (``DPORCH_PATH``); error logs and durable logs go under the state directory by
the task's escaped id.
"""

from __future__ import annotations

import os
import string
from dataclasses import dataclass, field
from pathlib import Path

from .config import ConfigIssue, TaskConfig

__all__ = ["PathPolicy", "Roots", "inside"]


def _real(paths: list[str | Path]) -> list[str]:
    return sorted({os.path.realpath(p) for p in paths})


def inside(path: str, roots: list[str]) -> bool:
    """Whether ``path``, symlinks resolved, is one of ``roots`` (resolved) or below one."""
    real = os.path.realpath(path)
    return any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


@dataclass
class Roots:
    read: list[str] = field(default_factory=list)
    write: list[str] = field(default_factory=list)


class PathPolicy:
    def __init__(self, project: list[str | Path], *, data: list[str | Path] = (), output: str | Path | None = None,
                 allow: list[str | Path] = (), state: str | Path | None = None):
        extra = list(allow)
        self.config = Roots(_real([*project, *extra]), _real([*project, *extra]))
        self.api = Roots(_real([*project, *data, *extra]), _real([*([output] if output else []), *extra]))
        self.state = os.path.realpath(state) if state else None

    def roots(self, cfg: TaskConfig) -> Roots:
        return self.api if cfg.source is None else self.config

    def check(self, cfg: TaskConfig) -> list[ConfigIssue]:
        """An issue per path of the task outside its folders."""
        roots = self.roots(cfg)
        issues = []

        def refuse(fld: str, path: str, allowed: list[str], verb: str) -> None:
            issues.append(ConfigIssue(cfg.source, cfg.id, fld,
                                      f"{path} is outside the folders this task may {verb} ({', '.join(allowed) or 'none'}); "
                                      "move it there, or start the server with --allow-path FOLDER"))

        for i, script in enumerate(cfg.scripts):
            if not inside(script, roots.read):
                refuse(f"scripts[{i}]", script, roots.read, "read")
        if cfg.input.type == "file" and cfg.input.path and not inside(cfg.input.path, roots.read):
            refuse("input.path", cfg.input.path, roots.read, "read")
        if cfg.output.type == "file" and cfg.output.path:
            try:
                target = _filled(cfg.output.path)
            except ValueError as exc:
                issues.append(ConfigIssue(cfg.source, cfg.id, "output.path", f"not a valid path template: {exc}"))
                return issues
            if not inside(target, roots.write):
                refuse("output.path", cfg.output.path, roots.write, "write")
            elif self.state and inside(target, [self.state]):
                issues.append(ConfigIssue(cfg.source, cfg.id, "output.path",
                                          f"{cfg.output.path} is inside the server's state directory {self.state}"))
        return issues


def _filled(template: str) -> str:
    """A template's path with each field standing for one plain file-name part."""
    parts = []
    for literal, name, _, _ in string.Formatter().parse(template):
        parts.append(literal)
        if name is not None:
            parts.append("_")
    return "".join(parts)
