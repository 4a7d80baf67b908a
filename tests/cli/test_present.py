"""The task commands' presentation: numbers without float noise, tables that never cut a
column, config problems one per line, one message catalogue in two languages, and a clear
error from a port where something other than the dporch API answers."""

from __future__ import annotations

import io
import socket
import string
import threading

import pytest
from rich.console import Console
from typer.testing import CliRunner

from dporch.api.client import ConfigProblem, DporchAPIError
from dporch.cli.app import app
from dporch.cli.messages import CATALOGUE, LANGS, Messages, detect_lang
from dporch.cli.present import config_lines, format_cell, format_number, print_table, rows_table

runner = CliRunner()


@pytest.mark.parametrize("value, text", [
    (5.7679999999999945, "5.768"), (33.55200000000001, "33.552"), (14.5935, "14.5935"), (0.1 + 0.2, "0.3"),
    (-0.13111918, "-0.131119"), (0.00550861234, "0.00550861"), (1e-9, "1e-09"), (12.0, "12"), (-0.0, "0"),
    (1234567.891234567, "1234567.891235"), (2.5e17, "2.5e+17"), (7, "7"), (float("nan"), "NaN"),
    (float("-inf"), "-inf"),
])
def test_numbers_read_without_float_noise(value, text):
    assert format_number(value) == text


def test_cells():
    assert [format_cell(v) for v in (None, True, False, "000001", [1.0000000001, "a"])] == [
        "", "true", "false", "000001", '[1, "a"]']


ROWS = [{"stock_code": f"00000{i}", "a_long_column_name": "Q" * 30, "value": 1 / 3 + i, "another_column": "yyyy",
         "note": "a text with words", "last": i * 0.1} for i in range(3)]


def test_a_table_into_a_pipe_keeps_its_natural_width():
    buf = io.StringIO()
    print_table(Console(file=buf, width=80), rows_table(ROWS, "title [x]"))
    lines = buf.getvalue().splitlines()
    assert "title [x]" in lines[0]
    assert lines[1].split() == list(ROWS[0])
    assert lines[2].split() == ["000000", "Q" * 30, "0.333333", "yyyy", "a", "text", "with", "words", "0"]
    assert len(lines) == 5 and len(lines[2]) > 80 and "…" not in buf.getvalue()


def test_a_table_on_a_narrow_terminal_folds_cells_and_cuts_nothing():
    buf = io.StringIO()
    console = Console(file=buf, width=40, force_terminal=True, color_system=None)
    print_table(console, rows_table(ROWS))
    text = buf.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 40
    assert "…" not in text
    squeezed = "".join(text.split())  # every character of every cell is somewhere on the screen
    assert squeezed.count("Q") == 90 and squeezed.count("y") == 12 and squeezed.count("w") == 6


def test_config_lines_name_the_file_and_each_field():
    exc = DporchAPIError("invalid_config", "invalid task configuration: ...",
                         [ConfigProblem("input.port", "required for a tcp input (an integer)", "t"),
                          ConfigProblem("output.mode", "unknown mode 'x'", "t")])
    assert config_lines(exc, "task.toml", Messages("en")) == [
        "the task configuration in task.toml has 2 problem(s):",
        "  input.port: required for a tcp input (an integer)",
        "  output.mode: unknown mode 'x'",
    ]


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_message_exists_in_both_languages_with_the_same_fields():
    for key, texts in CATALOGUE.items():
        assert set(texts) == set(LANGS), key
        assert _fields(texts["zh"]) == _fields(texts["en"]), key


@pytest.mark.parametrize("env, lang", [
    ({}, "en"), ({"LANG": "C.UTF-8"}, "en"), ({"LANG": "zh_CN.UTF-8"}, "zh"), ({"LANG": "en_US.UTF-8"}, "en"),
    ({"LANG": "en_US.UTF-8", "LC_ALL": "zh_TW.UTF-8"}, "zh"), ({"LANG": "zh_CN.UTF-8", "DPORCH_LANG": "en"}, "en"),
    ({"LANG": "en_GB.UTF-8", "LANGUAGE": "zh_CN:en"}, "zh"), ({"LANG": "C", "LANGUAGE": "zh_CN"}, "en"),
])
def test_language_from_the_environment(env, lang):
    assert detect_lang(env) == lang


def test_the_lang_option_and_the_environment_choose_the_language(tmp_path):
    missing = str(tmp_path / "none.csv")
    r = runner.invoke(app, ["--lang", "zh", "push", "t", missing])
    assert r.exit_code == 2 and r.stderr == f"错误: 找不到文件 {missing}\n"
    r = runner.invoke(app, ["push", "t", missing], env={"DPORCH_LANG": "", "LC_ALL": "", "LANG": "zh_CN.UTF-8"})
    assert r.stderr == f"错误: 找不到文件 {missing}\n"
    r = runner.invoke(app, ["push", "t", missing], env={"DPORCH_LANG": "", "LC_ALL": "", "LANG": "C.UTF-8"})
    assert r.stderr == f"error: file not found: {missing}\n"


def test_a_port_answering_something_else_is_not_taken_for_the_api():
    """A real socket that answers like a web server."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    try:
        r = runner.invoke(app, ["--lang", "en", "tasks", "list", "--server", f"127.0.0.1:{port}"])
    finally:
        t.join(5)
        listener.close()
    assert r.exit_code == 2
    assert r.stderr == f"error: 127.0.0.1:{port} answered, but it is not a dporch API: b'HTTP/1.0 400 Bad Request\\r\\n'\n"


def test_a_bad_server_address_is_a_usage_error():
    r = runner.invoke(app, ["--lang", "en", "tasks", "list", "--server", "localhost"])
    assert r.exit_code == 2
    assert r.stderr == ("error: server address must be host:port, got 'localhost'; a server address is HOST:PORT, "
                        "e.g. 127.0.0.1:8888\n")
