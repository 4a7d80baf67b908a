"""Recursive-descent parser: tokens -> AST (docs/language.md §17, precedence §5.1)."""

from __future__ import annotations

from . import ast as A
from .errors import Diagnostic, PackageError, ParseError
from .limits import BLOCK_MESSAGE, MAX_BLOCK_DEPTH, MAX_NESTING, NESTING_MESSAGE, headroom
from .lexer import RESERVED, TYPE_NAMES, Decl, FStringPart, Token, normalize_source, tokenize

__all__ = ["parse", "parse_expression", "ParseResult"]

_CMP_OPS = frozenset((">", "<", ">=", "<=", "==", "!="))
_STMT_END = frozenset(("NEWLINE", "DEDENT", "EOF"))


class ParseResult:
    """What :func:`parse` returns: the tree and the lexer/parser warnings."""

    def __init__(self, tree: A.Script | A.Package, warnings: list[Diagnostic]):
        self.tree = tree
        self.warnings = warnings


class _Parser:
    def __init__(self, tokens: list[Token], source: str, file: str | None, nesting: int = 0):
        self.toks = tokens
        self.i = 0
        self.src_lines = source.split("\n")
        self.file = file
        self.no_lambda = 0  # >0 while parsing a `when` arm condition outside brackets
        self.nesting = nesting  # expression nesting levels open (see .limits)
        self.blocks = 0  # if/else blocks open

    def enter(self, tok: Token) -> None:
        """One more level of expression nesting (ParseError beyond MAX_NESTING)."""
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise self.error(NESTING_MESSAGE, tok)

    # -- helpers --------------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Token:
        j = min(self.i + k, len(self.toks) - 1)
        return self.toks[j]

    def next(self) -> Token:
        t = self.toks[self.i]
        if self.i < len(self.toks) - 1:
            self.i += 1
        return t

    def at(self, *kinds: str) -> bool:
        return self.tok.kind in kinds

    def accept(self, kind: str) -> Token | None:
        if self.tok.kind == kind:
            return self.next()
        return None

    def error(self, msg: str, tok: Token | None = None) -> ParseError:
        t = tok or self.tok
        src = self.src_lines[t.line - 1] if 0 < t.line <= len(self.src_lines) else None
        return ParseError(msg, file=self.file, line=t.line, column=t.col, source_line=src)

    def expect(self, kind: str, what: str | None = None) -> Token:
        if self.tok.kind != kind:
            if self.tok.kind == "INDENT":
                raise self.error("unexpected indent")
            raise self.error(f"expected {what or repr(kind)}, found {self.tok.describe()}")
        return self.next()

    def ident(self, what: str) -> Token:
        t = self.tok
        if t.kind == "IDENT":
            if t.value in RESERVED:
                raise self.error(f"'{t.value}' is a reserved word and cannot be used as a name")
            return self.next()
        raise self.error(f"expected {what}, found {t.describe()}")

    def end_of_statement(self) -> None:
        if self.tok.kind == "NEWLINE":
            self.next()
        elif self.tok.kind not in ("DEDENT", "EOF"):
            raise self.error(f"expected end of line, found {self.tok.describe()}")

    # -- scripts ----------------------------------------------------------------------------------
    def parse_data_script(self, source: str) -> A.Script:
        inputs: list[tuple[str, str | None]] = []
        outputs: list[tuple[str, str | None]] = []
        imports: list[tuple[str, int, int]] = []
        precision = 6
        error_block: list[A.Stmt] | None = None
        seen: dict[str, int] = {}
        declared_input = False
        params: list[A.ParamDecl] = []
        params_tok: Token | None = None
        while self.at("DECL"):
            t = self.next()
            d: Decl = t.value
            if d.kind == "ERROR_END":
                raise self.error("-- ERROR_END -- without a matching -- ERROR --", t)
            if d.kind in seen:
                raise self.error(f"duplicate declaration: -- {d.kind} --", t)
            seen[d.kind] = t.line
            if d.kind == "ERROR":
                self.expect("NEWLINE", "end of line")
                error_block = []
                while not (self.at("DECL") and self.tok.value.kind == "ERROR_END"):
                    if self.at("EOF") or self.at("DECL"):
                        raise self.error("expected -- ERROR_END --")
                    error_block.append(self.statement(in_package=False))
                self.next()
            elif d.kind == "INPUT":
                inputs = [(n, ty) for n, ty, _ in d.params]
                declared_input = bool(inputs)
            elif d.kind == "OUTPUT":
                outputs = [(n, ty) for n, ty, _ in d.params]
            elif d.kind == "IMPORT":
                imports = [(n, t.line, c) for n, c in d.names]
            elif d.kind == "PRECISION":
                precision = d.precision
            elif d.kind == "PARAMS":
                params = [A.ParamDecl(t.line, c, n, ty, v) for n, ty, v, c in d.defaults]
                params_tok = t
            self.expect("NEWLINE", "end of line")
        clash = [p.name for p in params if p.name in {n for n, _ in inputs}]
        if clash:
            raise self.error(f"parameter {clash[0]} is also an INPUT column (rename one of them)", params_tok)
        body: list[A.Stmt] = []
        while not self.at("EOF"):
            if self.at("DECL"):
                raise self.error("header declarations must come before the script body")
            body.append(self.statement(in_package=False))
        return A.Script(self.file, source, inputs, outputs, imports, precision, error_block, body,
                        declared_input, seen, params)

    def parse_package(self, source: str) -> A.Package:
        self.expect("package")
        name = self.ident("a package name").value
        self.expect("NEWLINE", "end of line")
        variables: list[A.PkgVar] = []
        functions: list[A.FuncDef] = []
        while not self.at("EOF"):
            t = self.tok
            if t.kind == "DECL":
                if t.value.kind == "IMPORT":
                    raise PackageError("packages cannot import", file=self.file, line=t.line,
                                       column=t.col, source_line=self.src_lines[t.line - 1])
                raise self.error("declarations are not allowed in a package")
            if t.kind == "INDENT":
                raise self.error("unexpected indent")
            mut = bool(self.accept("mut"))
            if self.at("IDENT") and self.peek().kind == "(" and not mut:
                functions.append(self.funcdef())
                continue
            nt = self.ident("a variable or function definition")
            if not self.at("="):
                raise self.error("a package may only contain variable and function definitions")
            self.next()
            value = self.expr()
            self.end_of_statement()
            variables.append(A.PkgVar(nt.line, nt.col, nt.value, value, mut))
        return A.Package(self.file, source, name, variables, functions)

    def funcdef(self) -> A.FuncDef:
        nt = self.ident("a function name")
        self.expect("(")
        params: list[A.Param] = []
        seen_default = False
        while not self.at(")"):
            pt = self.ident("a parameter name")
            ptype = None
            if self.accept(":"):
                ptype = self.type_name()
            default = None
            if self.accept("="):
                default = self.expr()
                seen_default = True
            elif seen_default:
                raise self.error("a parameter without a default cannot follow one with a default", pt)
            if any(p.name == pt.value for p in params):
                raise self.error(f"duplicate parameter: {pt.value}", pt)
            params.append(A.Param(pt.line, pt.col, pt.value, ptype, default))
            if not self.accept(","):
                break
        self.expect(")")
        ret = None
        if self.accept("->"):
            ret = self.type_name()
        self.expect(":")
        body = self.block("function body")
        return A.FuncDef(nt.line, nt.col, nt.value, params, ret, body)

    def type_name(self) -> str:
        t = self.tok
        if t.kind in ("IDENT", "null") and t.value in TYPE_NAMES:
            self.next()
            return t.value
        raise self.error(f"unknown type: {t.value if t.value is not None else t.describe()}")

    def block(self, what: str) -> list[A.Stmt]:
        self.expect("NEWLINE", "end of line after ':'")
        if not self.at("INDENT"):
            raise self.error(f"expected an indented block ({what})")
        self.blocks += 1
        if self.blocks > MAX_BLOCK_DEPTH:
            raise self.error(BLOCK_MESSAGE)
        self.next()
        stmts = [self.statement(in_package=False)]
        while not self.at("DEDENT", "EOF"):
            stmts.append(self.statement(in_package=False))
        self.accept("DEDENT")
        self.blocks -= 1
        return stmts

    # -- statements -------------------------------------------------------------------------------
    def statement(self, in_package: bool) -> A.Stmt:
        t = self.tok
        k = t.kind
        if k == "INDENT":
            raise self.error("unexpected indent")
        if k == "return":
            self.next()
            value = None if self.at(*_STMT_END) else self.expr()
            self.end_of_statement()
            return A.Return(t.line, t.col, value)
        if k == "if":
            return self.if_stmt()
        if k in ("elif", "else"):
            raise self.error(f"'{k}' without a matching 'if'")
        if k == "mut":
            raise self.error("unexpected token: mut ('mut' is only allowed in packages)")
        if k == "[":
            save, nesting = self.i, self.nesting
            try:
                stmt = self.destructure()
            except ParseError as err:
                if getattr(err, "_committed", False) or err.message == NESTING_MESSAGE:
                    raise
                self.i, self.nesting = save, nesting
            else:
                return stmt
        if k == "IDENT":
            if self.peek().kind == "=":
                name = self.ident("a variable name").value
                self.next()
                value = self.expr()
                self.end_of_statement()
                return A.Assign(t.line, t.col, name, value)
            if self.peek().kind == "(" and self._looks_like_funcdef():
                raise self.error("functions can only be defined in packages")
        value = self.expr()
        if self.at("="):
            raise self.error("only a name or a [pattern] can be assigned to")
        self.end_of_statement()
        return A.ExprStmt(t.line, t.col, value)

    def _looks_like_funcdef(self) -> bool:
        depth, j = 0, self.i + 1
        while j < len(self.toks):
            k = self.toks[j].kind
            if k == "(":
                depth += 1
            elif k == ")":
                depth -= 1
                if depth == 0:
                    nk = self.toks[j + 1].kind if j + 1 < len(self.toks) else "EOF"
                    return nk in (":", "->")
            elif k in ("NEWLINE", "EOF"):
                return False
            j += 1
        return False

    def if_stmt(self) -> A.If:
        """``if``, its ``elif`` branches (read in a loop: any number of them) and ``else``;
        an ``elif`` is an If nested in the else branch (``is_elif``)."""
        arms: list[tuple[Token, A.Expr, list[A.Stmt]]] = []
        while not arms or self.at("elif"):
            t = self.next()
            cond = self.expr()
            self.expect(":", "':' after the if condition")
            arms.append((t, cond, self.block("if")))
        orelse: list[A.Stmt] = []
        if self.at("else"):
            self.next()
            self.expect(":", "':' after else")
            orelse = self.block("else")
        for t, cond, body in reversed(arms):
            node = A.If(t.line, t.col, cond, body, orelse, is_elif=t.kind == "elif")
            orelse = [node]
        return node

    def destructure(self) -> A.Destructure:
        t = self.expect("[")
        patterns: list[tuple[str, str | None]] = []
        rest_seen = False
        while not self.at("]"):
            if rest_seen:
                err = self.error("rest pattern must be last")
                err._committed = True  # type: ignore[attr-defined]
                raise err
            if self.accept("_"):
                patterns.append(("skip", None))
            elif self.accept("..."):
                patterns.append(("rest", self.ident("a name after ...").value))
                rest_seen = True
            else:
                patterns.append(("name", self.ident("a name").value))
            if not self.accept(","):
                break
        self.expect("]")
        if not self.at("="):
            raise self.error("expected '='")
        self.next()
        value = self.expr()
        self.end_of_statement()
        return A.Destructure(t.line, t.col, patterns, value)

    # -- expressions ------------------------------------------------------------------------------
    def expr(self) -> A.Expr:
        left = self.ternary()
        while self.at("|>"):
            pt = self.next()
            stage = self.ternary()
            if isinstance(stage, A.Call) and not stage.pipe_bare:
                stage.args.insert(0, left)
                left = stage
            elif isinstance(stage, A.Name):
                left = A.Call(stage.line, stage.col, stage.id, None, [left], pipe_bare=True)
            else:
                raise self.error("pipe right-hand side must be a function call", pt)
        return left

    def ternary(self) -> A.Expr:
        self.enter(self.tok)
        cond = self.or_expr()
        if self.at("?"):
            t = self.next()
            then = self.or_expr()
            self.expect(":", "':' in the ternary expression")
            other = self.ternary()
            cond = A.Ternary(t.line, t.col, cond, then, other)
        self.nesting -= 1
        return cond

    def or_expr(self) -> A.Expr:
        left = self.and_expr()
        while self.at("or"):
            t = self.next()
            left = A.Logic(t.line, t.col, "or", left, self.and_expr())
        return left

    def and_expr(self) -> A.Expr:
        left = self.not_expr()
        while self.at("and"):
            t = self.next()
            left = A.Logic(t.line, t.col, "and", left, self.not_expr())
        return left

    def not_expr(self) -> A.Expr:
        if self.at("not"):
            t = self.next()
            self.enter(t)
            node = A.Unary(t.line, t.col, "not", self.not_expr())
            self.nesting -= 1
            return node
        return self.cmp_expr()

    def cmp_expr(self) -> A.Expr:
        first = self.add_expr()
        if not self.tok.kind in _CMP_OPS:
            return first
        ops, operands, positions = [], [first], []
        while self.tok.kind in _CMP_OPS:
            t = self.next()
            ops.append(t.kind)
            positions.append((t.line, t.col))
            operands.append(self.add_expr())
        return A.Compare(first.line, first.col, ops, operands, positions)

    def add_expr(self) -> A.Expr:
        left = self.mul_expr()
        while self.at("+", "-"):
            t = self.next()
            left = A.Binary(t.line, t.col, t.kind, left, self.mul_expr())
        return left

    def mul_expr(self) -> A.Expr:
        left = self.unary()
        while self.at("*", "/", "%"):
            t = self.next()
            left = A.Binary(t.line, t.col, t.kind, left, self.unary())
        return left

    def unary(self) -> A.Expr:
        if self.at("-"):
            t = self.next()
            self.enter(t)
            node = A.Unary(t.line, t.col, "-", self.unary())
            self.nesting -= 1
            return node
        return self.pow_expr()

    def pow_expr(self) -> A.Expr:
        base = self.postfix()
        if self.at("^"):
            t = self.next()
            self.enter(t)
            base = A.Binary(t.line, t.col, "^", base, self.unary())
            self.nesting -= 1
        return base

    def postfix(self) -> A.Expr:
        """A primary and the calls, subscripts and members applied to it in a row (each wraps
        the node once more: a level of nesting, counted after its own arguments)."""
        node = self.primary()
        applied = 0
        while True:
            k = self.tok.kind
            if k in ("(", "[", "."):
                applied += 1
                if self.nesting + applied > MAX_NESTING:
                    raise self.error(NESTING_MESSAGE)
            if k == "(":
                node = self.call(node)
            elif k == "[":
                node = self.subscript(node)
            elif k == ".":
                t = self.next()
                if not isinstance(node, A.Name):
                    raise self.error("member access is only allowed on a package name", t)
                member = self.ident("a member name")
                node = A.Member(node.line, node.col, node.id, member.value)
                if self.at("."):
                    raise self.error("member access is only one level deep (pkg.name)")
            else:
                return node

    def call(self, callee: A.Expr) -> A.Call:
        t = self.tok
        if isinstance(callee, A.Name):
            name, pkg = callee.id, None
        elif isinstance(callee, A.Member):
            name, pkg = callee.name, callee.pkg
        else:
            raise self.error("only functions or methods can be called", t)
        self.next()
        args: list[A.Expr] = []
        kwargs: list[tuple[str, A.Expr]] = []
        self.no_lambda_push()
        try:
            while not self.at(")"):
                if self.at("IDENT") and self.peek().kind == "=":
                    kt = self.ident("a keyword argument name")
                    self.next()
                    if any(k == kt.value for k, _ in kwargs):
                        raise self.error(f"keyword argument repeated: {kt.value}", kt)
                    kwargs.append((kt.value, self.expr()))
                elif kwargs:
                    raise self.error("positional argument follows keyword argument")
                elif self.at("..."):
                    st = self.next()
                    args.append(A.Spread(st.line, st.col, self.postfix()))
                else:
                    args.append(self.expr())
                if not self.accept(","):
                    break
            self.expect(")", "')' to close the call")
        finally:
            self.no_lambda_pop()
        return A.Call(callee.line, callee.col, name, pkg, args, kwargs)

    def subscript(self, base: A.Expr) -> A.Expr:
        t = self.next()
        self.no_lambda_push()
        try:
            start = None
            if not self.at(":"):
                start = self.expr()
                if self.accept("]"):
                    return A.Index(t.line, t.col, base, start)
            self.expect(":", "']' or ':'")
            end = None if self.at("]") else self.expr()
            self.expect("]", "']'")
        finally:
            self.no_lambda_pop()
        alias = _is_zero(start) and _is_zero(end)
        return A.Slice(t.line, t.col, base, start, end, alias)

    def no_lambda_push(self) -> None:
        self._saved = getattr(self, "_saved", [])
        self._saved.append(self.no_lambda)
        self.no_lambda = 0

    def no_lambda_pop(self) -> None:
        self.no_lambda = self._saved.pop()

    def primary(self) -> A.Expr:
        t = self.tok
        k = t.kind
        if k == "NUM":
            self.next()
            return A.Num(t.line, t.col, t.value)
        if k == "STR":
            self.next()
            return A.Str(t.line, t.col, t.value)
        if k == "FSTR":
            self.next()
            return self.fstring(t)
        if k in ("true", "false"):
            self.next()
            return A.Bool(t.line, t.col, k == "true")
        if k == "null":
            self.next()
            return A.Null(t.line, t.col)
        if k == "IDENT":
            if self.peek().kind == "->" and not self.no_lambda:
                self.ident("a parameter name")
                self.next()
                return A.LambdaExpr(t.line, t.col, [t.value], self.ternary())
            self.ident("a name")
            return A.Name(t.line, t.col, t.value)
        if k == "(":
            if not self.no_lambda and self._lambda_params_ahead():
                return self.paren_lambda()
            self.next()
            self.no_lambda_push()
            try:
                inner = self.expr()
                self.expect(")", "')'")
            finally:
                self.no_lambda_pop()
            if self.at("("):
                raise self.error("only functions or methods can be called")
            if self.at("."):
                raise self.error("member access is only allowed on a package name")
            return inner
        if k == "[":
            return self.array()
        if k == "when":
            return self.when()
        if k == "...":
            raise self.error("spread '...' is only allowed in an array literal or a call's arguments")
        if k == "{" or k == "}":
            raise self.error(f"unexpected token: {k} (DPLang has no object literals)")
        if k == "INDENT":
            raise self.error("unexpected indent")
        raise self.error(f"unexpected token: {t.describe()}")

    def _lambda_params_ahead(self) -> bool:
        j = self.i + 1
        toks = self.toks
        if toks[j].kind == ")":
            return toks[j + 1].kind == "->"
        while toks[j].kind == "IDENT":
            j += 1
            if toks[j].kind == ",":
                j += 1
                continue
            break
        return toks[j].kind == ")" and toks[j + 1].kind == "->" and j > self.i + 1

    def paren_lambda(self) -> A.LambdaExpr:
        t = self.expect("(")
        params: list[str] = []
        while not self.at(")"):
            p = self.ident("a parameter name").value
            if p in params:
                raise self.error(f"duplicate lambda parameter: {p}")
            params.append(p)
            if not self.accept(","):
                break
        self.expect(")")
        self.expect("->")
        return A.LambdaExpr(t.line, t.col, params, self.ternary())

    def array(self) -> A.ArrayLit:
        t = self.expect("[")
        elems: list[A.Expr] = []
        self.no_lambda_push()
        try:
            while not self.at("]"):
                if self.at("..."):
                    st = self.next()
                    elems.append(A.Spread(st.line, st.col, self.postfix()))
                else:
                    elems.append(self.expr())
                if not self.accept(","):
                    break
            self.expect("]", "']' to close the array")
        finally:
            self.no_lambda_pop()
        return A.ArrayLit(t.line, t.col, elems)

    def when(self) -> A.When:
        t = self.expect("when")
        arms: list[tuple[A.Expr, A.Expr]] = []
        other = None
        while True:
            if self.at("else"):
                if not arms:
                    raise self.error("a when needs at least one condition before else")
                self.next()
                self.expect("->", "'->' after else")
                other = self.ternary()
                break
            self.no_lambda += 1
            try:
                cond = self.or_expr()
            finally:
                self.no_lambda -= 1
            self.expect("->", "'->' in the when branch")
            arms.append((cond, self.ternary()))
            if not self.accept(","):
                break
        return A.When(t.line, t.col, arms, other)

    def fstring(self, t: Token) -> A.FStr:
        parts: list[str | A.Expr] = []
        for p in t.value:
            if isinstance(p, str):
                parts.append(p)
                continue
            parts.append(self._placeholder(p, t))
        return A.FStr(t.line, t.col, parts)

    def _placeholder(self, p: FStringPart, t: Token) -> A.Expr:
        def bad() -> ParseError:
            return self.error("invalid expression in f-string", t)

        if not p.text:
            raise bad()
        try:
            toks, _ = tokenize(p.text, self.file, decls=False)
        except Exception:
            raise bad() from None
        # Shift positions to the placeholder's place in the file (nested f-strings' own
        # placeholders too: they are parsed from these tokens later).
        for item in toks + [q for tok in toks if tok.kind == "FSTR" for q in tok.value
                            if isinstance(q, FStringPart)]:
            if item.line == 1:
                item.col += p.col - 1
            item.line += p.line - 1
        sub = _Parser(toks, "\n".join(self.src_lines), self.file, self.nesting)
        try:
            e = sub.expr()
            if sub.at("NEWLINE"):
                sub.next()
            if not sub.at("EOF"):
                raise bad()
        except ParseError as err:
            if err.message == NESTING_MESSAGE:
                raise
            raise bad() from None
        return e


def _is_zero(e: A.Expr | None) -> bool:
    return isinstance(e, A.Num) and e.value == 0.0


def _first_significant(tokens: list[Token]) -> Token:
    return tokens[0]


def parse(source: str, file: str | None = None) -> ParseResult:
    """Parse a data script or a package script (chosen by its first token, §3.1)."""
    source = normalize_source(source)
    tokens, warnings = tokenize(source, file)
    p = _Parser(tokens, source, file)
    with headroom():
        if tokens[0].kind == "package":
            tree: A.Script | A.Package = p.parse_package(source)
        else:
            tree = p.parse_data_script(source)
    return ParseResult(tree, warnings)


def parse_expression(text: str) -> A.Expr:
    """Parse one expression (for tests and tools)."""
    tokens, _ = tokenize(text)
    p = _Parser(tokens, text, None)
    with headroom():
        e = p.expr()
    p.accept("NEWLINE")
    if not p.at("EOF"):
        raise p.error(f"unexpected token: {p.tok.describe()}")
    return e
