"""One exception hierarchy for everything DPLang can report (docs/language.md §14).

Every error carries a *kind* (the class's ``kind``), a message, and where known the source file,
1-based line and column, the 0-based input row and the stream key. ``format()`` renders the
user-facing form ``Kind at FILE:L:C (row R, key K): message`` followed by the source line and a
caret under the column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "DPLangError",
    "LexError",
    "ParseError",
    "CheckError",
    "PackageError",
    "InputError",
    "ParamError",
    "DPRuntimeError",
    "ZeroDivision",
    "DPTypeError",
    "UndefinedVariable",
    "UndefinedFunction",
    "ArgumentMismatch",
    "IndexOutOfBounds",
    "NullReference",
    "ScriptExit",
    "Diagnostic",
    "caret_block",
]


def caret_block(source_line: str | None, column: int | None) -> str:
    """The source line and a caret under ``column`` (1-based), indented by two spaces."""
    if source_line is None:
        return ""
    text = source_line.rstrip("\n")
    out = "  " + text
    if column:
        # Keep tabs so the caret lines up with what the terminal shows.
        pad = "".join(ch if ch == "\t" else " " for ch in text[: column - 1])
        out += "\n  " + pad + "^"
    return out


class DPLangError(Exception):
    """Base of every DPLang error. ``kind`` is the stable name shown to users. ``aborts_run``:
    the error ends a streaming run too (``exit()``, an error inside the ERROR block, §9.5),
    where other row errors only skip their row."""

    kind = "DPLangError"
    aborts_run = False

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        row: int | None = None,
        key: Any = None,
        source_line: str | None = None,
        input_line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.row = row
        self.key = key
        self.source_line = source_line
        self.input_line = input_line  # the input's line (1-based) holding the row

    @property
    def is_runtime(self) -> bool:
        return isinstance(self, DPRuntimeError)

    def located(self, **where: Any) -> "DPLangError":
        """Fill in location fields that are still unknown; returns self."""
        for name, value in where.items():
            if getattr(self, name) is None and value is not None:
                setattr(self, name, value)
        return self

    def header(self) -> str:
        where = self.file or "<script>"
        if self.line:
            where += f":{self.line}:{self.column or 1}"
        text = f"{self.kind} at {where}"
        if self.row is not None or self.input_line is not None:
            parts = [] if self.row is None else [f"row {self.row}"]
            if self.key is not None:
                parts.append(f"key {self.key}")
            if self.input_line is not None:
                parts.append(f"input line {self.input_line}")
            text += " (" + ", ".join(parts) + ")"
        return f"{text}: {self.message}"

    def format(self) -> str:
        block = caret_block(self.source_line, self.column)
        return self.header() + ("\n" + block if block else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "row": self.row,
            "key": self.key,
            "input_line": self.input_line,
        }

    def __str__(self) -> str:
        return self.header()


class LexError(DPLangError):
    kind = "LexError"


class ParseError(DPLangError):
    kind = "ParseError"


class CheckError(DPLangError):
    """Raised when the static check (§11.2) finds errors; ``findings`` holds all of them."""

    kind = "CheckError"

    def __init__(self, message: str, *, findings: "list[Diagnostic] | None" = None, **where: Any):
        super().__init__(message, **where)
        self.findings = findings or []

    def format(self) -> str:
        errors = [d for d in self.findings if d.is_error]
        if not errors:
            return super().format()
        return "\n".join(d.format() for d in errors)


class PackageError(DPLangError):
    kind = "PackageError"


class InputError(DPLangError):
    """Unreadable input, or input that does not fit the script. ``file`` is the input (or the
    script that could not be read); line and column, when known, are in that file."""

    kind = "InputError"

    def header(self) -> str:
        if self.file is None and self.line is None:
            return f"{self.kind}: {self.message}"
        where = self.file or "input"
        if self.line:
            where += f":{self.line}" + (f":{self.column}" if self.column else "")
        return f"{self.kind} at {where}: {self.message}"


class ParamError(DPLangError):
    """A parameter value set from outside (``--set``, ``--sweep``, ``params = {...}``) that the
    script does not declare, or that does not convert to the declared type (§3.7): a usage
    error, found before any row is read. ``file``/``line`` point to the PARAMS declaration."""

    kind = "ParamError"

    def header(self) -> str:
        if self.file is None:
            return f"{self.kind}: {self.message}"
        where = self.file + (f":{self.line}" if self.line else "")
        return f"{self.kind} at {where}: {self.message}"


class DPRuntimeError(DPLangError):
    """Errors raised while a row executes."""

    kind = "RuntimeError"


class ZeroDivision(DPRuntimeError):
    kind = "ZeroDivision"


class DPTypeError(DPRuntimeError):
    kind = "TypeError"


class UndefinedVariable(DPRuntimeError):
    kind = "UndefinedVariable"


class UndefinedFunction(DPRuntimeError):
    kind = "UndefinedFunction"


class ArgumentMismatch(DPRuntimeError):
    kind = "ArgumentMismatch"


class IndexOutOfBounds(DPRuntimeError):
    kind = "IndexOutOfBounds"


class NullReference(DPRuntimeError):
    kind = "NullReference"


class ScriptExit(DPRuntimeError):
    kind = "ScriptExit"
    aborts_run = True


@dataclass
class Diagnostic:
    """One finding of the static check: an error (``CheckError``/``ArgumentMismatch``) or a
    warning (code ``W1``..``W5``)."""

    code: str
    message: str
    file: str | None
    line: int
    column: int
    source_line: str | None = None
    is_error: bool = True

    def header(self) -> str:
        return f"{self.code} at {self.file or '<script>'}:{self.line}:{self.column}: {self.message}"

    def format(self) -> str:
        block = caret_block(self.source_line, self.column)
        return self.header() + ("\n" + block if block else "")
