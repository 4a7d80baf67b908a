"""``dporch run`` and ``dporch check`` (docs/language.md §16)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

if TYPE_CHECKING:
    from ..lang.errors import Diagnostic, DPLangError
    from ..lang.program import Program

# The compiler and the engines load inside the commands: `dporch --help` and the task commands
# need none of them, and `dporch run` on a small file needs neither numpy nor Arrow.

__all__ = ["register"]


class OutFormat(str, Enum):
    csv = "csv"
    json = "json"


def _err(text: str) -> None:
    typer.echo(text, err=True)


def report(exc: DPLangError) -> None:
    """Print an error (all findings for a CheckError) on stderr."""
    findings = getattr(exc, "findings", None)
    if findings:
        for d in sorted(findings, key=lambda d: (d.file or "", d.line, d.column)):
            _err(d.format())
    else:
        _err(exc.format())


SET_HELP = ("Set a script parameter declared in -- PARAMS -- (docs/language.md, 3.7): NAME=VALUE, converted to the "
            "parameter's declared type; repeat for several.")


def set_values(items: list[str] | None) -> dict[str, str]:
    """``--set NAME=VALUE`` options as a dict, exiting 2 on a malformed item."""
    from ..lang.errors import ParamError
    from ..lang.params import parse_assignments

    try:
        return parse_assignments(items or [])
    except ParamError as exc:
        _err(exc.format())
        raise typer.Exit(2) from None


def load_program(script: Path, strict_null: bool = False, params: dict[str, object] | None = None) -> Program:
    """Compile a script for a command, exiting 2 on I/O and parameter errors and 1 on script
    errors."""
    from ..lang.errors import DPLangError, InputError, ParamError
    from ..lang.program import compile_program, read_script

    try:
        source = read_script(str(script))
    except InputError as exc:
        _err(exc.format())
        raise typer.Exit(2) from None
    try:
        program = compile_program(source, str(script), strict_null=strict_null,
                                  on_warning=lambda d: _err(f"warning: {d.message}"), params=params)
    except (InputError, ParamError) as exc:  # a package script given to run; a bad --set
        _err(exc.format())
        raise typer.Exit(2) from None
    except DPLangError as exc:
        report(exc)
        raise typer.Exit(1) from None
    for w in program.warnings:
        _err(w.format())
    return program


# The column form first imports numpy and pyarrow (and TA-Lib for indicators): ~0.1 s of CPU
# before its first row; the row form needs none of them and takes ~3-8 us a row more. Below
# about 1 MiB of CSV (~20k rows of ticks) the row form finishes first (bench/bench_startup.py).
COLUMN_FORM_MIN_BYTES = 1 << 20


def _large_enough(input: str, explain: bool) -> bool:
    """Whether the input file is large enough for the column form to pay for its imports."""
    import os

    try:
        size = os.stat(input).st_size
    except OSError:
        return False  # the row form reports it
    if size >= COLUMN_FORM_MIN_BYTES:
        return True
    if explain:
        _err(f"using the row form: the input has {size:,} bytes, under the {COLUMN_FORM_MIN_BYTES:,} "
             "for which the column form pays for its start")
    return False


def _run_columns(program: Program, input: str, output: Path | None, key: str | None, explain: bool) -> bool:
    """Try the column form on a CSV file; False when the row form must run instead."""
    from ..engine.batch import AUTO_KEY, HeaderError
    from ..engine.columnar import run_columns
    from ..engine.readers import utf8_error
    from ..engine.writers import LazyFile
    from ..lang.vector_values import Unsupported

    out = LazyFile(output, binary=True) if output else sys.stdout.buffer
    try:
        run_columns(program, input, out, key=AUTO_KEY if key is None else key, note=_err)
    except Unsupported as exc:
        if explain:
            _err(f"using the row form: {exc}")
        return False
    except HeaderError as exc:
        _err(exc.located(file=input).format())
        raise typer.Exit(2) from None
    except UnicodeDecodeError as exc:
        _err(utf8_error(input, exc).format())
        raise typer.Exit(2) from None
    except OSError as exc:
        _err(f"InputError: cannot read input {input}: {exc.strerror or exc}")
        raise typer.Exit(2) from None
    finally:
        if output:
            out.close()
    if explain:
        _err("used the column form")
    return True


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        script: Path = typer.Argument(..., help="The DPLang data script (.dp)."),
        input: Optional[str] = typer.Argument(None, help="CSV or JSON-lines input; '-' or nothing reads stdin."),
        output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the output here instead of stdout."),
        key: Optional[str] = typer.Option(None, "--key", help="Partition streams by this column, or 'none' for one stream. Default: stock_code when the input has it."),
        fmt: OutFormat = typer.Option(OutFormat.csv, "--format", help="Output format."),
        strict_null: bool = typer.Option(False, "--strict-null", help="Arithmetic and comparisons with a null operand raise NullReference instead of giving null."),
        explain: bool = typer.Option(False, "--explain", help="Say on stderr which form (column or row) runs each statement, and why."),
        row_form: bool = typer.Option(False, "--row-form", help="Always use the row form (the column form is used for CSV files when the script allows it)."),
        set_: Optional[list[str]] = typer.Option(None, "--set", metavar="NAME=VALUE", help=SET_HELP),
    ) -> None:
        """Run SCRIPT once per input row (batch mode) and print the output rows."""
        from ..engine.batch import AUTO_KEY, HeaderError, run_batch
        from ..engine.readers import open_text, read_records, utf8_error
        from ..engine.writers import LazyFile, RowWriter
        from ..lang.errors import DPLangError, InputError

        program = load_program(script, strict_null, set_values(set_))
        if explain:
            from ..lang.vector import explain as explain_forms
            for line in explain_forms(program):
                _err(line)
        if (input not in (None, "-") and fmt is OutFormat.csv and not strict_null and not row_form
                and _large_enough(input, explain) and _run_columns(program, input, output, key, explain)):
            return
        where = input if input not in (None, "-") else "stdin"
        stream = None
        try:
            stream = open_text(input)
            records = read_records(stream)
        except InputError as exc:
            _err(exc.located(file=where).format())
            raise typer.Exit(2) from None
        except UnicodeDecodeError as exc:
            _err(utf8_error(input, exc, getattr(stream, "count", None)).format())
            raise typer.Exit(2) from None
        out = LazyFile(output) if output else sys.stdout
        writer = RowWriter(out, program.outputs, fmt.value, owns=output is not None)
        try:
            run_batch(program, records, writer.write, key=AUTO_KEY if key is None else key,
                      note=_err, warn=lambda m: _err(f"warning: {m}"), write_block=writer.write_rows)
        except HeaderError as exc:
            _err(exc.located(file=input if input not in (None, "-") else "stdin").format())
            raise typer.Exit(2) from None
        except InputError as exc:
            writer.close()
            _err(exc.located(file=where).format())
            raise typer.Exit(2) from None
        except UnicodeDecodeError as exc:
            writer.close()
            _err(utf8_error(input, exc, getattr(stream, "count", None)).format())
            raise typer.Exit(2) from None
        except DPLangError as exc:
            writer.close()
            report(exc)
            raise typer.Exit(1) from None
        writer.close()

    @app.command()
    def check(script: Path = typer.Argument(..., help="A DPLang data or package script."),
              set_: Optional[list[str]] = typer.Option(None, "--set", metavar="NAME=VALUE",
                                                       help=SET_HELP + " Checks the values too.")) -> None:
        """Lex, parse, load packages and run the static checks; print every finding (and the
        script's parameters with the values a run would use)."""
        from ..lang.errors import CheckError, DPLangError, InputError, ParamError
        from ..lang.params import param_text
        from ..lang.program import compile_program, read_script

        given = set_values(set_)
        try:
            source = read_script(str(script))
        except InputError as exc:
            _err(exc.format())
            raise typer.Exit(2) from None
        findings: list[Diagnostic] = []
        try:
            program = compile_program(source, str(script), params=given)
            findings = program.warnings
            if program.params:
                decls = {p.name: p.type for p in program.script.params}
                _err("parameters: " + ", ".join(f"{n}:{decls[n]} = {param_text(v)}" + (" (set)" if n in given else "")
                                                for n, v in program.params.items()))
        except ParamError as exc:
            _err(exc.format())
            raise typer.Exit(2) from None
        except InputError:
            findings = _check_package(source, str(script))
        except CheckError as exc:
            findings = exc.findings
        except DPLangError as exc:
            if getattr(exc, "findings", None):
                findings = exc.findings  # type: ignore[attr-defined]
            else:
                _err(exc.format())
                raise typer.Exit(1) from None
        for d in sorted(findings, key=lambda d: (d.file or "", d.line, d.column)):
            _err(d.format())
        errors = sum(1 for d in findings if d.is_error)
        warnings = len(findings) - errors
        _err(f"{script}: {errors} error(s), {warnings} warning(s)")
        raise typer.Exit(1 if errors else 0)


def _check_package(source: str, path: str) -> list[Diagnostic]:
    """`dporch check` on a package script: parse and check it on its own."""
    from ..lang import ast as A
    from ..lang.checker import check as run_check
    from ..lang.parser import parse

    result = parse(source, path)
    tree = result.tree
    assert isinstance(tree, A.Package)
    qual = Path(path).stem
    dummy = A.Script(path, "", [], [], [], 6, None, [], False)
    return result.warnings + [d for d in run_check(dummy, {qual: tree})]
