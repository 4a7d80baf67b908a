"""tasks.toml loading and validation (SEED §3): every issue names file, task, field."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

from dporch.orchestration.config import deep_merge, load_config

from .conftest import ROOT


def write(tmp_path: Path, text: str, name: str = "tasks.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip())
    return p


GOOD_SCRIPT = "-- INPUT stock_code:string, close:number --\n-- OUTPUT stock_code, close --\nreturn [stock_code, close]\n"


def test_seed_example_loads_with_defaults(tmp_path):
    (tmp_path / "s.dp").write_text(GOOD_SCRIPT)
    cfg = load_config(write(tmp_path, """
        [global]
        default_window_size = 500
        default_pool_size = 3
        default_pool_max_size = 6

        [[task]]
        id = "t1"
        name = "实时"
        scripts = ["s.dp"]
        [task.schema]
        columns = [{ name = "stock_code", type = "string", required = true }, { name = "close", type = "number" }]
        [task.routing]
        enabled = true
        key_column = "stock_code"
        strategy = "sticky"
        [task.input]
        type = "tcp"
        port = 9001
        [task.output]
        type = "file"
        path = "./output/{stock_code}.csv"
        mode = "split"
    """))
    assert cfg.issues == []
    [t] = cfg.tasks
    assert t.scripts == [str((tmp_path / "s.dp").resolve())]
    assert t.compute_pool.window_size == 500 and t.compute_pool.initial_size == 3 and t.compute_pool.max_size == 6
    assert t.routing.strategy == "sticky" and t.key_column == "stock_code"
    assert t.output.path == str(tmp_path / "output/{stock_code}.csv")
    assert t.schema_types() == {"stock_code": "string", "close": "number"}


def test_every_issue_is_reported_and_valid_tasks_survive(tmp_path):
    (tmp_path / "s.dp").write_text(GOOD_SCRIPT)
    path = write(tmp_path, """
        [[task]]
        id = "bad"
        scripts = ["s.dp"]
        colour = "red"
        [task.schema]
        columns = [{ name = "close", type = "float" }]
        [task.routing]
        enabled = true
        key_column = "stock_code"
        strategy = "random"
        [task.compute_pool]
        initial_size = 4
        max_size = 2
        window_size = "big"
        [task.input]
        type = "kafka"

        [[task]]
        id = "good"
        scripts = ["s.dp"]
    """)
    cfg = load_config(path)
    assert [t.id for t in cfg.tasks] == ["good"]
    issues = {(i.task, i.field): i.message for i in cfg.issues}
    assert all(i.file == str(path) for i in cfg.issues)
    assert "unknown key" in issues[("bad", "colour")]
    assert "unknown type 'float'" in issues[("bad", "schema.columns[0].type")]
    assert "not a schema column" in issues[("bad", "routing.key_column")]
    assert "allowed: hash, round_robin, sticky" in issues[("bad", "routing.strategy")]
    assert "at least initial_size" in issues[("bad", "compute_pool.max_size")]
    assert "must be an integer" in issues[("bad", "compute_pool.window_size")]
    assert "allowed: stdin, file, tcp" in issues[("bad", "input.type")]


def test_missing_scripts_and_syntax_errors(tmp_path):
    cfg = load_config(write(tmp_path, '[[task]]\nid = "x"\n'))
    assert any(i.field == "scripts" for i in cfg.issues)
    cfg = load_config(write(tmp_path, "[[task]\nid=1\n", "broken.toml"))
    assert cfg.issues[0].field == "syntax"


def test_include_resolves_paths_against_the_included_file(tmp_path):
    wf = tmp_path / "workflows"
    wf.mkdir()
    (wf / "s.dp").write_text(GOOD_SCRIPT)
    (wf / "more.toml").write_text('[[task]]\nid = "inc"\nscripts = ["s.dp"]\n[task.input]\ntype = "file"\npath = "../data/x.csv"\n')
    cfg = load_config(write(tmp_path, 'include = ["workflows/more.toml"]\n'))
    [t] = cfg.tasks
    assert t.scripts == [str((wf / "s.dp").resolve())]
    assert t.input.path == str((tmp_path / "data/x.csv").resolve())


def test_manager_checks_scripts_ports_and_chains(tmp_path, scheduler):
    from dporch.orchestration.config import ConfigError
    from dporch.orchestration.manager import TaskManager

    (tmp_path / "bad.dp").write_text("-- INPUT a --\n-- OUTPUT r --\nreturn [nope]\n")
    (tmp_path / "first.dp").write_text("-- INPUT a:number --\n-- OUTPUT b --\nreturn [a]\n")
    (tmp_path / "second.dp").write_text("-- INPUT c:number --\n-- OUTPUT d --\nreturn [c]\n")
    m = TaskManager(None)
    try:
        m.create({"id": "t", "scripts": [str(tmp_path / "bad.dp")]})
    except ConfigError as exc:
        assert exc.issues[0].field == "scripts[0]" and "undefined variable: nope" in exc.issues[0].message
    else:
        raise AssertionError("a script failing the check must be refused")
    try:
        m.create({"id": "c", "scripts": [str(tmp_path / "first.dp"), str(tmp_path / "second.dp")]})
    except ConfigError as exc:
        assert "not OUTPUT columns of the previous script" in exc.issues[0].message
    else:
        raise AssertionError("a chain whose INPUT columns are missing must be refused")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        try:
            m.create({"id": "p", "scripts": [str(tmp_path / "first.dp")], "input": {"type": "tcp", "port": busy}})
        except ConfigError as exc:
            assert exc.issues[0].field == "input.port" and "cannot listen" in exc.issues[0].message
        else:
            raise AssertionError("a port in use must be refused")
    assert m.tasks == {}


def test_deep_merge():
    assert deep_merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 5}}) == {"a": {"b": 5, "c": 2}, "d": 3}


def test_default_tasks_toml_is_valid():
    cfg = load_config(ROOT / "tasks.toml")
    assert cfg.issues == []
    assert {t.id for t in cfg.tasks} == {"realtime-indicators", "history-ma-cross", "backtest-ma-cross"}


def test_output_path_templates_are_checked_before_start(tmp_path):
    (tmp_path / "s.dp").write_text(GOOD_SCRIPT)
    tasks = "".join(f"""
        [[task]]
        id = "{tid}"
        scripts = ["s.dp"]
        [task.output]
        type = "file"
        mode = "{mode}"
        path = "{path}"
    """ for tid, mode, path in [
        ("merge_column", "merge", "out/{stock_code}.csv"),
        ("merge_task", "merge", "out/{task_id}-{key}.csv"),
        ("split_column", "split", "out/{stock_code}/{key}.csv"),
        ("unbalanced", "split", "out/{key.csv"),
        ("positional", "split", "out/{}.csv"),
        ("attribute", "split", "out/{key.__class__}.csv"),
    ])
    cfg = load_config(write(tmp_path, tasks))
    assert sorted(t.id for t in cfg.tasks) == ["merge_task", "split_column"]
    issues = {i.task: i.message for i in cfg.issues if i.field == "output.path"}
    assert issues["merge_column"] == ('a merge output is one file, so {stock_code} cannot vary in its path; '
                                      'set output.mode = "split" for one file per value')
    assert "not a valid path template" in issues["unbalanced"]
    assert "positional or indexed fields" in issues["positional"]
    assert "positional or indexed fields" in issues["attribute"]
