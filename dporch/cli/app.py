"""The ``dporch`` command line (typer)."""

from __future__ import annotations

import typer

from . import backtest_command, lang_commands, serve_commands, stream_commands, task_commands

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
task_commands.register(app)


@app.command()
def client(server: str = typer.Option(None, "--server", envvar="DPORCH_SERVER", help="Connect at start (host:port)."),
           token: str = typer.Option(None, "--token", envvar="DPORCH_TOKEN")) -> None:
    """The interactive client (SEED §7.1): connect, list, show, create, start, pause, resume,
    stop, delete, push, attach, output, subscribe, help, exit."""
    from .repl import Repl

    Repl(server, token).run()


def main() -> None:
    app()
