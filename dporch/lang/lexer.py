"""Lexer: source text -> tokens with NEWLINE/INDENT/DEDENT layout (docs/language.md §2, §3.2).

Two passes. ``_scan`` turns the text into tokens and records, per physical line, where it starts;
``_layout`` joins physical lines into logical lines (implicit joining rules J1-J4 of §2.9), measures
indentation and emits the layout tokens with the Python-like algorithm of §2.8.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .errors import Diagnostic, LexError, ParseError

__all__ = ["Token", "Decl", "tokenize", "normalize_source", "KEYWORDS", "RESERVED", "TYPE_NAMES"]

KEYWORDS = frozenset(
    "return if elif else when package mut null true false and or not".split()
)
RESERVED = frozenset("for while break continue import export let const var fn".split())
TYPE_NAMES = ("number", "decimal", "string", "bool", "array", "null")
DECL_KINDS = ("INPUT", "OUTPUT", "IMPORT", "PRECISION", "PARAMS", "ERROR", "ERROR_END")
PARAM_TYPES = ("number", "decimal", "string", "bool")  # the types a script parameter may have (§3.7)

# Longest first, so that ">=" wins over ">".
_OPERATORS = [
    "...", "->", "|>", ">=", "<=", "==", "!=",
    "+", "-", "*", "/", "%", "^", ">", "<", "=", "?", ":", ",", ".", "(", ")", "[", "]", "{", "}",
]
_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {")", "]", "}"}

# §2.9 J2: a line ending in one of these continues on the next line.
_CONT_AT_END = frozenset(
    "+ - * / % ^ == != < > <= >= and or not = , ? -> |> ...".split()
)
# §2.9 J4: a next line starting with one of these continues the previous one.
_CONT_AT_START = frozenset("|> ? : and or + * / % ^ == != < > <= >=".split())


@dataclass(slots=True)
class Token:
    kind: str  # IDENT NUM STR FSTR DECL NEWLINE INDENT DEDENT EOF, or the keyword/operator text
    value: Any
    line: int
    col: int

    def describe(self) -> str:
        if self.kind in ("IDENT", "NUM"):
            return f"{self.kind.lower()} '{self.value}'" if self.kind == "IDENT" else f"number {self.value}"
        if self.kind == "STR":
            return "string"
        if self.kind == "FSTR":
            return "f-string"
        if self.kind == "DECL":
            return f"declaration -- {self.value.kind} --"
        if self.kind in ("NEWLINE", "INDENT", "DEDENT", "EOF"):
            return {"NEWLINE": "end of line", "INDENT": "indent", "DEDENT": "dedent",
                    "EOF": "end of file"}[self.kind]
        return f"'{self.kind}'"


@dataclass(slots=True)
class Decl:
    """A header declaration ``-- KIND content --``."""

    kind: str
    params: list[tuple[str, str | None, int]] = field(default_factory=list)  # name, type, column
    names: list[tuple[str, int]] = field(default_factory=list)  # IMPORT: (name, column)
    precision: int = 6
    defaults: list[tuple[str, str, Any, int]] = field(default_factory=list)  # PARAMS: name, type, default, column


@dataclass(slots=True)
class FStringPart:
    """A placeholder of an f-string: its source text and where it starts."""

    text: str
    line: int
    col: int


def normalize_source(text: str) -> str:
    """Strip a BOM and normalise CRLF / lone CR to LF (§1)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _is_ident_start(ch: str) -> bool:
    if ch == "_" or ch.isalpha():
        return True
    return ord(ch) > 127 and unicodedata.category(ch) in ("Nl", "Mn", "Mc")


def _is_ident_char(ch: str) -> bool:
    if ch == "_" or ch.isalnum():
        return True
    return ord(ch) > 127 and (ch.isnumeric() or unicodedata.category(ch) in ("Nl", "Mn", "Mc"))


def is_identifier(text: str) -> bool:
    return bool(text) and _is_ident_start(text[0]) and all(_is_ident_char(c) for c in text[1:]) \
        and not text[0].isdigit()


class _Scanner:
    def __init__(self, src: str, file: str | None, decls: bool = True):
        self.src = src
        self.decls = decls  # f-string placeholders have no declarations (`{--3}` is 3)
        self.file = file
        self.lines = src.split("\n")
        self.pos = 0
        self.line = 1
        self.col = 1
        self.tokens: list[Token] = []
        self.warnings: list[Diagnostic] = []
        self.depth = 0  # bracket depth, for J1 and for recognising declarations

    # -- errors -------------------------------------------------------------------------------
    def _src_line(self, line: int) -> str | None:
        return self.lines[line - 1] if 0 < line <= len(self.lines) else None

    def lex_error(self, msg: str, line: int, col: int) -> LexError:
        return LexError(msg, file=self.file, line=line, column=col, source_line=self._src_line(line))

    def parse_error(self, msg: str, line: int, col: int) -> ParseError:
        return ParseError(msg, file=self.file, line=line, column=col, source_line=self._src_line(line))

    # -- cursor -------------------------------------------------------------------------------
    def _advance(self, n: int = 1) -> None:
        for _ in range(n):
            if self.src[self.pos] == "\n":
                self.line += 1
                self.col = 1
            else:
                self.col += 1
            self.pos += 1

    def _add(self, kind: str, value: Any, line: int, col: int) -> None:
        self.tokens.append(Token(kind, value, line, col))

    # -- main loop ----------------------------------------------------------------------------
    def scan(self) -> list[Token]:
        src = self.src
        n = len(src)
        at_line_start = True
        while self.pos < n:
            ch = src[self.pos]
            if ch == "\n":
                self._add("NL", None, self.line, self.col)
                self._advance()
                at_line_start = True
                continue
            if ch in " \t":
                self._advance()
                continue
            if ch == "#":
                while self.pos < n and src[self.pos] != "\n":
                    self._advance()
                continue
            if at_line_start and self.decls and self.depth == 0 and src.startswith("--", self.pos):
                self._declaration()
                at_line_start = False
                continue
            at_line_start = False
            line, col = self.line, self.col
            if ch.isdigit() and ch.isascii():
                self._number()
            elif ch in "\"'":
                self._add("STR", self._string(ch), line, col)
            elif ch == "f" and self.pos + 1 < n and src[self.pos + 1] in "\"'":
                self._advance()
                self._add("FSTR", self._fstring(src[self.pos]), line, col)
            elif _is_ident_start(ch):
                start = self.pos
                while self.pos < n and _is_ident_char(src[self.pos]):
                    self._advance()
                word = src[start:self.pos]
                if word in KEYWORDS:
                    self._add(word, word, line, col)
                elif word == "_":
                    self._add("_", word, line, col)
                else:
                    self._add("IDENT", word, line, col)
            else:
                for op in _OPERATORS:
                    if src.startswith(op, self.pos):
                        break
                else:
                    raise self.lex_error(f"unexpected character: {ch}", line, col)
                if op in _OPEN:
                    self.depth += 1
                elif op in _CLOSE and self.depth > 0:
                    self.depth -= 1
                self._advance(len(op))
                self._add(op, op, line, col)
        self._add("NL", None, self.line, self.col)
        return self.tokens

    def _number(self) -> None:
        src, start, line, col = self.src, self.pos, self.line, self.col
        n = len(src)
        while self.pos < n and src[self.pos].isdigit() and src[self.pos].isascii():
            self._advance()
        if self.pos + 1 < n and src[self.pos] == "." and src[self.pos + 1].isdigit() \
                and src[self.pos + 1].isascii():
            self._advance()
            while self.pos < n and src[self.pos].isdigit() and src[self.pos].isascii():
                self._advance()
        if self.pos < n and src[self.pos] in "eE":
            self._advance()
            if self.pos < n and src[self.pos] in "+-":
                self._advance()
            if not (self.pos < n and src[self.pos].isdigit() and src[self.pos].isascii()):
                raise self.lex_error(f"invalid number: {src[start:self.pos]}", line, col)
            while self.pos < n and src[self.pos].isdigit() and src[self.pos].isascii():
                self._advance()
        self._add("NUM", float(src[start:self.pos]), line, col)

    _ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}

    def _string(self, quote: str) -> str:
        line, col = self.line, self.col
        self._advance()
        out = []
        src, n = self.src, len(self.src)
        while True:
            if self.pos >= n:
                raise self.lex_error("unclosed string", line, col)
            ch = src[self.pos]
            if ch == quote:
                self._advance()
                return "".join(out)
            if ch == "\\" and self.pos + 1 < n:
                nxt = src[self.pos + 1]
                out.append(self._ESCAPES.get(nxt, nxt))
                self._advance(2)
                continue
            out.append(ch)
            self._advance()

    def _fstring(self, quote: str) -> list[str | FStringPart]:
        line, col = self.line, self.col - 1  # the 'f'
        self._advance()
        parts: list[str | FStringPart] = []
        text: list[str] = []
        src, n = self.src, len(self.src)
        while True:
            if self.pos >= n:
                raise self.lex_error("unclosed f-string", line, col)
            ch = src[self.pos]
            if ch == quote:
                self._advance()
                break
            if ch == "\\" and self.pos + 1 < n:
                nxt = src[self.pos + 1]
                text.append(self._ESCAPES.get(nxt, nxt))
                self._advance(2)
                continue
            if ch == "{" and src.startswith("{{", self.pos):
                text.append("{")
                self._advance(2)
                continue
            if ch == "}" and src.startswith("}}", self.pos):
                text.append("}")
                self._advance(2)
                continue
            if ch == "{":
                if text:
                    parts.append("".join(text))
                    text = []
                pline, pcol = self.line, self.col
                self._advance()
                depth, start = 1, self.pos
                while True:
                    if self.pos >= n:
                        raise self.lex_error("unclosed { in f-string", pline, pcol)
                    c = src[self.pos]
                    if c == "{":
                        depth += 1
                    elif c == "}":
                        depth -= 1
                        if depth == 0:
                            break
                    self._advance()
                raw = src[start:self.pos]
                self._advance()  # the closing }
                lead = len(raw) - len(raw.lstrip())
                parts.append(FStringPart(raw.strip(), pline, pcol + 1 + lead))
                continue
            text.append(ch)
            self._advance()
        if text or not parts:
            parts.append("".join(text))
        return parts

    # -- declarations (§3.2) --------------------------------------------------------------------
    def _declaration(self) -> None:
        line, col = self.line, self.col
        src = self.src
        end_of_line = src.find("\n", self.pos)
        if end_of_line < 0:
            end_of_line = len(src)
        text = src[self.pos:end_of_line]
        close = text.find("--", 2)
        if close < 0:
            raise self.parse_error("declaration not closed with --", line, col)
        content = text[2:close]
        rest = text[close + 2:].strip()
        if rest and not rest.startswith("#"):
            raise self.parse_error(
                "unexpected text after the declaration's closing --", line, col + close + 2
            )
        stripped = content.strip()
        word = stripped.split(None, 1)[0] if stripped else ""
        kind = word.upper()
        if kind not in DECL_KINDS:
            raise self.lex_error(f"unknown special declaration: {text[:close + 2].strip()}", line, col)
        body = stripped[len(word):]
        body_col = col + 2 + (len(content) - len(content.lstrip())) + len(word)
        decl = Decl(kind)
        if kind in ("INPUT", "OUTPUT"):
            decl.params = self._param_list(body, line, body_col)
        elif kind == "IMPORT":
            decl.names = self._import_list(body, line, body_col)
        elif kind == "PRECISION":
            decl.precision = self._precision(body, line, col)
        elif kind == "PARAMS":
            decl.defaults = self._params_list(body, line, body_col)
        elif body.strip():
            raise self.parse_error(f"-- {kind} -- takes no arguments", line, col)
        self._add("DECL", decl, line, col)
        self._advance(end_of_line - self.pos)

    def _items(self, body: str, base_col: int):
        offset = 0
        for item in body.split(","):
            lead = len(item) - len(item.lstrip())
            yield item.strip(), base_col + offset + lead
            offset += len(item) + 1

    def _param_list(self, body: str, line: int, base_col: int) -> list[tuple[str, str | None, int]]:
        params: list[tuple[str, str | None, int]] = []
        seen: set[str] = set()
        for item, col in self._items(body, base_col):
            if not item:
                continue
            if ":" in item:
                name, _, typ = item.partition(":")
                name, typ = name.strip(), typ.strip()
                if typ not in TYPE_NAMES:
                    raise self.parse_error(f"unknown type: {typ}", line, col)
            else:
                name, typ = item, None
            if not is_identifier(name) or name in KEYWORDS or name in RESERVED:
                raise self.parse_error(f"parameter format error: '{item}' is not a valid column name", line, col)
            if name in seen:
                raise self.parse_error(f"duplicate column: {name}", line, col)
            seen.add(name)
            params.append((name, typ, col))
        return params

    def _params_list(self, body: str, line: int, base_col: int) -> list[tuple[str, str, Any, int]]:
        """``name:type = literal, ...`` (§3.7): every item typed, with a literal default."""
        out: list[tuple[str, str, Any, int]] = []
        seen: set[str] = set()
        for item, col in _quoted_items(body, base_col):
            if not item:
                continue
            head, eq, literal = item.partition("=")
            name, colon, typ = head.partition(":")
            name, typ = name.strip(), typ.strip()
            if not is_identifier(name) or name in KEYWORDS or name in RESERVED:
                raise self.parse_error(f"parameter format error: '{item}' is not name:type = value", line, col)
            if not colon or not typ:
                raise self.parse_error(f"parameter {name} needs a type and a default: {name}:number = 5", line, col)
            if typ not in PARAM_TYPES:
                raise self.parse_error(f"unknown parameter type: {typ} (a parameter is a "
                                       f"{', '.join(PARAM_TYPES[:-1])} or {PARAM_TYPES[-1]})", line, col)
            if not eq or not literal.strip():
                raise self.parse_error(f"parameter {name} needs a default value: {name}:{typ} = ...", line, col)
            if name in seen:
                raise self.parse_error(f"duplicate parameter: {name}", line, col)
            seen.add(name)
            out.append((name, typ, self._param_literal(literal.strip(), typ, name, line, col), col))
        return out

    def _param_literal(self, text: str, typ: str, name: str, line: int, col: int) -> Any:
        """The default of a parameter: a literal of its type (a negative number is one)."""
        wrong = self.parse_error(f"the default of parameter {name} must be a {typ} literal, got {text}", line, col)
        try:
            toks = [t for t in _Scanner(text, self.file, decls=False).scan() if t.kind != "NL"]
        except (LexError, ParseError):
            raise wrong from None
        kinds = [t.kind for t in toks]
        if typ in ("number", "decimal") and kinds in (["NUM"], ["-", "NUM"]):
            if typ == "decimal":
                return Decimal(text.replace(" ", "").replace("\t", ""))
            return -toks[-1].value if kinds[0] == "-" else toks[0].value
        if typ == "string" and kinds == ["STR"]:
            return toks[0].value
        if typ == "bool" and kinds in (["true"], ["false"]):
            return kinds[0] == "true"
        raise wrong

    def _import_list(self, body: str, line: int, base_col: int) -> list[tuple[str, int]]:
        names = []
        for item, col in self._items(body, base_col):
            if not item:
                continue
            if not is_identifier(item):
                raise self.parse_error(f"invalid package name: {item}", line, col)
            names.append((item, col))
        return names

    def _precision(self, body: str, line: int, col: int) -> int:
        words = body.split()
        value = words[-1] if words else ""
        if value.isdigit() and value.isascii() and 0 <= int(value) <= 28:
            return int(value)
        self.warnings.append(Diagnostic(
            "W0", f"PRECISION expects an integer from 0 to 28, got '{body.strip()}'; using 6",
            self.file, line, col, self._src_line(line), is_error=False))
        return 6


def _quoted_items(body: str, base_col: int):
    """Comma-separated items of ``body`` (commas inside quoted strings do not separate) with
    the column where each starts."""
    bounds: list[tuple[int, int]] = []
    start, i, quote = 0, 0, None
    while i < len(body):
        ch = body[i]
        if quote is not None:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == ",":
            bounds.append((start, i))
            start = i + 1
        i += 1
    bounds.append((start, len(body)))
    for a, b in bounds:
        raw = body[a:b]
        yield raw.strip(), base_col + a + len(raw) - len(raw.lstrip())


def _layout(scanner: _Scanner, raw: list[Token]) -> list[Token]:
    """Join physical lines into logical lines and emit NEWLINE / INDENT / DEDENT (§2.8, §2.9)."""
    # Split the raw stream at NL markers into physical lines (dropping empty ones: blank or
    # comment-only lines never matter for layout).
    lines: list[list[Token]] = []
    cur: list[Token] = []
    for tok in raw:
        if tok.kind == "NL":
            if cur:
                lines.append(cur)
                cur = []
        else:
            cur.append(tok)
    # Group physical lines into logical ones.
    logical: list[list[Token]] = []
    i = 0
    while i < len(lines):
        group = list(lines[i])
        depth = 0
        pending_q = 0
        for t in group:
            depth, pending_q = _track(t, depth, pending_q)
        i += 1
        while i < len(lines):
            last = group[-1]
            nxt = lines[i][0]
            join = (
                depth > 0  # J1: inside an unclosed bracket
                or last.kind in _CONT_AT_END  # J2: the line ends with an operator
                or (last.kind == ":" and pending_q >= 0)  # J3: this ':' answers a pending '?'
                or nxt.kind in _CONT_AT_START  # J4: the next line starts with an operator
            )
            if not join or nxt.kind == "DECL" or last.kind == "DECL":
                break
            for t in lines[i]:
                depth, pending_q = _track(t, depth, pending_q)
            group.extend(lines[i])
            i += 1
        logical.append(group)

    out: list[Token] = []
    stack = [0]
    first = True
    for group in logical:
        head = group[0]
        width = _indent_width(scanner.lines[head.line - 1])
        if first and width != 0:
            raise scanner.parse_error("unexpected indent", head.line, head.col)
        first = False
        if width > stack[-1]:
            stack.append(width)
            out.append(Token("INDENT", None, head.line, head.col))
        elif width < stack[-1]:
            while width < stack[-1]:
                stack.pop()
                out.append(Token("DEDENT", None, head.line, head.col))
            if width != stack[-1]:
                raise scanner.lex_error("inconsistent dedent", head.line, head.col)
        out.extend(group)
        last = group[-1]
        out.append(Token("NEWLINE", None, last.line, last.col + 1))
    end_line = len(scanner.lines)
    while len(stack) > 1:
        stack.pop()
        out.append(Token("DEDENT", None, end_line, 1))
    out.append(Token("EOF", None, end_line, 1))
    return out


def _track(t: Token, depth: int, pending_q: int) -> tuple[int, int]:
    """Bracket depth and the count of depth-0 '?' minus ':' after token ``t`` (for J1 and J3)."""
    k = t.kind
    if k in _OPEN:
        return depth + 1, pending_q
    if k in _CLOSE:
        return max(depth - 1, 0), pending_q
    if depth == 0:
        if k == "?":
            return depth, pending_q + 1
        if k == ":":
            return depth, pending_q - 1
    return depth, pending_q


def _indent_width(line: str) -> int:
    width = 0
    for ch in line:
        if ch == " ":
            width += 1
        elif ch == "\t":
            width += 4
        else:
            break
    return width


def tokenize(source: str, file: str | None = None, *, decls: bool = True) -> tuple[list[Token], list[Diagnostic]]:
    """Tokens of ``source`` (already normalised or not) plus lexer warnings. ``decls=False``
    reads ``--`` at a line start as two minus signs (for f-string placeholders)."""
    scanner = _Scanner(normalize_source(source), file, decls)
    raw = scanner.scan()
    return _layout(scanner, raw), scanner.warnings
