"""Package resolution and loading (docs/language.md §12.1)."""

from __future__ import annotations

import os
from pathlib import Path

from . import ast as A
from .errors import DPLangError, PackageError
from .parser import parse

__all__ = ["search_dirs", "find_package", "load_imports"]

# Parsed packages, keyed by (absolute path, mtime): loaded once however often imported.
_CACHE: dict[tuple[str, float], A.Package] = {}


def search_dirs(script_file: str | None) -> list[Path]:
    """The script's folder, then ./packages/, then each folder of DPORCH_PATH."""
    dirs: list[Path] = []
    if script_file:
        dirs.append(Path(script_file).resolve().parent)
    dirs.append(Path.cwd() / "packages")
    for entry in os.environ.get("DPORCH_PATH", "").split(os.pathsep):
        if entry:
            dirs.append(Path(entry))
    return dirs


def find_package(name: str, script_file: str | None) -> Path | None:
    for d in search_dirs(script_file):
        candidate = d / f"{name}.dp"
        if candidate.is_file():
            return candidate
    return None


def _load(path: Path) -> A.Package:
    key = (str(path.resolve()), path.stat().st_mtime)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PackageError(f"cannot read package file {path}: {exc}", file=str(path)) from None
    tree = parse(text, str(path)).tree
    if not isinstance(tree, A.Package):
        raise PackageError(f"file {path} is not a valid package script (it must start with 'package NAME')",
                           file=str(path), line=1, column=1)
    _CACHE[key] = tree
    return tree


def load_imports(script: A.Script) -> dict[str, A.Package]:
    """Every package the script imports, by import name. Errors name the IMPORT line."""
    out: dict[str, A.Package] = {}
    lines = script.source.split("\n")
    for name, line, col in script.imports:
        where = dict(file=script.file, line=line, column=col,
                     source_line=lines[line - 1] if 0 < line <= len(lines) else None)
        path = find_package(name, script.file)
        if path is None:
            searched = ", ".join(str(d) for d in search_dirs(script.file))
            raise PackageError(f"package not found: {name} (searched for {name}.dp in {searched})", **where)
        try:
            out[name] = _load(path)
        except PackageError:
            raise
        except DPLangError as err:
            if err.file is None:
                err.file = str(path)
            raise
    return out
