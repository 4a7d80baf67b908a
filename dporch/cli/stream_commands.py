"""``dporch daemon``: stream a CSV / JSON-lines source through a script (issue: streaming)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Optional

import typer

from .lang_commands import load_program, report

if TYPE_CHECKING:
    from ..engine.writers import RowWriter, SplitWriter

__all__ = ["register"]


def _err(text: str) -> None:
    typer.echo(text, err=True)


def register(app: typer.Typer) -> None:
    @app.command()
    def daemon(
        script: Path = typer.Argument(..., help="The DPLang data script."),
        input: Optional[str] = typer.Argument(None, help="CSV or JSON-lines input file; '-' or nothing reads stdin."),
        key: Optional[str] = typer.Option(None, "--key", help="Partition column, or 'none'. Default: stock_code when present."),
        window: int = typer.Option(1000, "--window", min=1, help="History rows kept per key (offsets beyond give null)."),
        out: Optional[Path] = typer.Option(None, "--out", help="--split: the directory for {key}.csv files; --merge: the output file (default stdout)."),
        split: bool = typer.Option(False, "--split/--merge", help="One CSV per key, or one merged CSV."),
        buffer: int = typer.Option(1000, "--buffer", min=1, help="Output rows buffered before a write (flushed when input pauses and at exit)."),
        follow: bool = typer.Option(False, "--follow", help="Keep reading a growing file (like tail -f)."),
        workers: int = typer.Option(1, "--workers", min=1, help="Processes for --split CSV input: keys are spread over them by a stable hash."),
    ) -> None:
        """Stream rows through SCRIPT as they arrive: bad lines are reported and skipped, failing
        rows are skipped, and every accepted row is written before exit (also on Ctrl-C)."""
        from ..engine.batch import AUTO_KEY
        from ..engine.daemon import run_daemon
        from ..engine.sources import LineSource
        from ..lang.errors import DPLangError, InputError

        program = load_program(script)
        src: int | BinaryIO
        if input is None or input == "-":
            src = sys.stdin.buffer
        else:
            try:
                src = os.open(input, os.O_RDONLY)
            except OSError as exc:
                _err(f"InputError: cannot read input {input}: {exc.strerror}")
                raise typer.Exit(2) from None
        if workers > 1 and not split:
            _err("--workers needs --split: a merged output must keep the input order across keys")
            raise typer.Exit(2)
        if split and out is None:
            _err("--split needs --out DIR (the folder for one CSV file per key)")
            raise typer.Exit(2)
        source = LineSource(src, follow=follow)
        try:
            if workers > 1:
                from ..engine.parallel import run_parallel_daemon

                stats = run_parallel_daemon(program, source, str(out / "{key}.csv"), workers=workers,
                                            key=AUTO_KEY if key is None else key, window=window,
                                            buffer=buffer, report=lambda m: _err(f"warning: {m}"), note=_err)
            else:
                stats = run_daemon(program, source, _sink(program.outputs, out, split, buffer),
                                   key=AUTO_KEY if key is None else key,
                                   window=window, report=lambda m: _err(f"warning: {m}"), note=_err)
        except ValueError as exc:  # an existing split file with another header
            _err(f"error: {exc}")
            raise typer.Exit(2) from None
        except InputError as exc:
            report(exc.located(file=input if input not in (None, "-") else "stdin"))
            raise typer.Exit(2) from None
        except DPLangError as exc:  # exit() or an error in the ERROR block ended the run
            report(exc)
            raise typer.Exit(1) from None
        _err(stats.summary())


def _sink(columns: list[str], out: Optional[Path], split: bool, buffer: int) -> SplitWriter | RowWriter:
    from ..engine.writers import RowWriter, SplitWriter

    if split:
        assert out is not None
        return SplitWriter(str(out / "{key}.csv"), columns, buffer_rows=buffer)
    exists = out is not None and out.exists() and out.stat().st_size > 0
    stream = open(out, "a", encoding="utf-8", newline="") if out else sys.stdout
    return RowWriter(stream, columns, buffer_rows=buffer, header=not exists, owns=out is not None)
