"""The ``dporch`` command line (typer)."""

from __future__ import annotations

from enum import Enum
from typing import Optional

import typer

from .. import __version__
from . import (backtest_command, help_style, lang_commands, messages, serve_commands, stream_commands, task_commands,
               workflow_commands)

app = typer.Typer(
    name="dporch",
    help="Run DPLang scripts over market data: batch runs, checks, streaming and orchestration. "
         "The language: docs/language.md; tasks and the orchestrator: docs/orchestration.md; the API: docs/api.md.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=help_style.DporchGroup,
)


class Lang(str, Enum):
    zh = "zh"
    en = "en"


LangOpt = typer.Option(None, "--lang", case_sensitive=False,
                       help="Language of the task commands' and the client's messages "
                            "(default: $DPORCH_LANG, else the locale: zh_* gives zh, others en).")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dporch {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    lang: Optional[Lang] = LangOpt,
) -> None:
    # Options of every command; the help text is the app's (Typer(help=...)).
    messages.use(lang.value if lang else None)


lang_commands.register(app)
stream_commands.register(app)
backtest_command.register(app)
serve_commands.register(app)
task_commands.register(app)
workflow_commands.register(app)


@app.command()
def client(server: Optional[str] = typer.Option(None, "--server", envvar="DPORCH_SERVER", metavar="HOST:PORT",
                                                help="Connect to this API at start."),
           token: Optional[str] = typer.Option(None, "--token", envvar="DPORCH_TOKEN",
                                               help="API token, if the server needs one."),
           lang: Optional[Lang] = LangOpt) -> None:
    """The interactive client: connect, list, show, create, start, pause, resume, stop, delete,
    push, attach, output, subscribe, help, exit (docs/orchestration.md, "The interactive client")."""
    from .repl import Repl

    msgs = messages.use(lang.value) if lang else messages.current()
    Repl(server, token, msgs=msgs).run()


help_style.apply(app)


def main() -> None:
    app()
