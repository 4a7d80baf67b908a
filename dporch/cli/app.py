"""The ``dporch`` command line (typer)."""

from __future__ import annotations

import typer

from . import backtest_command, lang_commands, serve_commands, stream_commands

app = typer.Typer(
    name="dporch",
    help="Run DPLang scripts over market data: batch runs, checks, streaming and orchestration.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
lang_commands.register(app)
stream_commands.register(app)
backtest_command.register(app)
serve_commands.register(app)


def main() -> None:
    app()
