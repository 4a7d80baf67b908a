"""Every command's help as a new user reads it: each option explained, no text eaten by rich
markup, usage lines in the usual SCRIPT [INPUT] form, no flag typed <bool>, no citation of
documents a clone of the project does not have; and ``dporch --version``."""

from __future__ import annotations

import re
from typing import Any, Iterator

import pytest
import typer.rich_utils
from rich.text import Text
from typer.main import get_command
from typer.testing import CliRunner

from dporch import __version__
from dporch.cli.app import app

runner = CliRunner()



def commands(cmd: Any = None, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, click command) of every command and group, the root included."""
    cmd = cmd or get_command(app)
    yield path, cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from commands(sub, path + (name,))


def params(cmd: Any) -> list[Any]:
    from typer._click import Context

    return cmd.get_params(Context(cmd))


def helps() -> Iterator[tuple[str, str]]:
    """(where, text) of every command help and parameter help."""
    for path, cmd in commands():
        name = " ".join(path) or "dporch"
        if cmd.help:
            yield name, cmd.help
        for p in params(cmd):
            if getattr(p, "help", None):
                yield f"{name} {p.opts[0] if p.opts else p.name}", p.help


def test_every_option_and_argument_has_a_help_text():
    missing = [(" ".join(path), p.opts[0] if getattr(p, "opts", None) else p.name)
               for path, cmd in commands() for p in params(cmd) if not getattr(p, "help", None)]
    assert missing == []


def test_no_help_text_loses_brackets_to_markup():
    for where, text in helps():
        intended = text.replace("\\[", "[")
        assert Text.from_markup(text).plain == intended, where


def test_help_cites_no_document_outside_the_project():
    found = {(where.split()[0] if where != "dporch" else where, text) for where, text in helps()
             if re.search(r"SEED|\.\./shared|DPLANG\.md|§", text)}
    assert found == set()


@pytest.fixture
def wide_help(monkeypatch):
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 250)


def test_usage_lines_and_types(wide_help):
    for path, cmd in commands():
        r = runner.invoke(app, [*path, "--help"])
        assert r.exit_code == 0, path
        usage = next(line for line in r.stdout.splitlines() if "Usage:" in line)
        assert "{" not in usage and "<" not in usage, usage
        assert "<bool>" not in r.stdout and "<str>" not in r.stdout and "<int" not in r.stdout, path
    r = runner.invoke(app, ["run", "--help"])
    assert "Usage: dporch run [OPTIONS] SCRIPT [INPUT]" in r.stdout
    r = runner.invoke(app, ["backtest", "--help"])
    assert "Usage: dporch backtest [OPTIONS] SCRIPT_OR_CONFIG [DATA]..." in r.stdout


def test_brackets_survive_in_rendered_help(wide_help):
    r = runner.invoke(app, ["tasks", "create", "--help"])
    assert "A TOML file with one [[task]] table, or a JSON object." in r.stdout
    r = runner.invoke(app, ["--help"])
    assert "docs/language.md" in r.stdout and "docs/orchestration.md" in r.stdout


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout == f"dporch {__version__}\n"
