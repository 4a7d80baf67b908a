"""How ``dporch ... --help`` names values: arguments as ``SCRIPT [INPUT]`` (typer writes
``{script} [input]``), flags without a type (typer writes ``<bool>``), and plain words for
value types (``INTEGER``, ``PATH``, ``TEXT``) instead of ``<int range>`` or ``<list[str]>``.

:func:`apply` gives every command of an app these classes; the command modules need not know."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

__all__ = ["DporchCommand", "DporchGroup", "apply"]

_TYPE_WORDS = {"int": "INTEGER", "int range": "INTEGER", "float": "NUMBER", "float range": "NUMBER",
               "str": "TEXT", "list[str]": "TEXT", "path": "PATH", "file": "FILE", "directory": "DIR",
               "list[path]": "PATH"}


def _type_word(param: Any, ctx: Any) -> str:
    label = param.display_type(ctx).strip("<>")
    return _TYPE_WORDS.get(label, label if "|" in label else label.upper())


class _Argument(TyperArgument):
    """An argument whose type column reads PATH or TEXT (typer shows ``<path>``, ``<list[str]>``)."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return _type_word(self, ctx)


def _tidy(param: Any, ctx: Any) -> None:
    """Give a parameter a readable metavar unless its command chose one."""
    if isinstance(param, TyperArgument):
        if type(param) is TyperArgument:
            param.__class__ = _Argument
        if param.metavar is None:
            param.metavar = param.name.upper()
    elif isinstance(param, TyperOption):
        if param.is_flag:
            param.metavar = ""
        elif param.metavar is None:
            param.metavar = _type_word(param, ctx)


class DporchGroup(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for p in params:
            _tidy(p, ctx)
        return params


class DporchCommand(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for p in params:
            _tidy(p, ctx)
        return params

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """``[OPTIONS] SCRIPT [INPUT]``: required arguments bare, optional ones in brackets."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for p in self.get_params(ctx):
            if isinstance(p, TyperArgument):
                name = p.metavar or p.name.upper()
                name = name if p.required else f"[{name}]"
                pieces.append(name + ("..." if p.nargs != 1 else ""))
        return pieces


def apply(app: typer.Typer) -> None:
    """Use :class:`DporchCommand` for every command of ``app`` and its sub-apps that has no class
    of its own (typer's default)."""
    for info in app.registered_commands:
        if info.cls in (None, TyperCommand):
            info.cls = DporchCommand
    for group in app.registered_groups:
        if group.typer_instance is not None:
            apply(group.typer_instance)
