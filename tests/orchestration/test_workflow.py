"""Workflows: the graph inferred from paths and task inputs, Snakemake's up-to-date rule,
dry runs, staged outputs, and tasks that read tasks, on the shared LocalCluster."""

from __future__ import annotations

import asyncio
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from dporch.cli.app import app
from dporch.orchestration.config import load_config
from dporch.orchestration.states import TaskState
from dporch.orchestration.workflow import build_graph, layout

from .conftest import free_port, read_split, run_async, wait_until

runner = CliRunner()

PASS = """-- INPUT k:string, v:number --
-- OUTPUT k:string, v:number, {col}:number --
return [k, v, {expr}]
"""


def scripts(d: Path) -> None:
    (d / "a.dp").write_text(PASS.format(col="a", expr="v * 2"))
    (d / "b.dp").write_text("-- INPUT k:string, v:number, a:number --\n-- OUTPUT k:string, v:number, b:number --\n"
                            "return [k, v, a + v[-1]]\n")
    (d / "c.dp").write_text("-- INPUT k:string, v:number, b:number --\n-- OUTPUT k:string, c:number --\n"
                            "return [k, b * 10]\n")


def three_task_file(d: Path, n: int = 60) -> Path:
    scripts(d)
    (d / "in.csv").write_text("k,v\n" + "".join(f"{'XYZ'[i % 3]},{i}\n" for i in range(n)))
    f = d / "tasks.toml"
    f.write_text("""
[[task]]
id = "a"
scripts = ["a.dp"]
routing = { enabled = true, key_column = "k" }
input = { type = "file", path = "in.csv" }
output = { type = "file", mode = "split", path = "out/a/{k}.csv" }

[[task]]
id = "b"
scripts = ["b.dp"]
routing = { enabled = true, key_column = "k" }
input = { type = "file", path = "out/a/{k}.csv" }
output = { type = "file", mode = "merge", path = "out/b.csv" }

[[task]]
id = "c"
scripts = ["c.dp"]
routing = { enabled = true, key_column = "k" }
input = { type = "file", path = "out/b.csv" }
output = { type = "file", mode = "merge", path = "out/c.csv" }
""")
    return f


def wf(*args: str, cwd: Path) -> tuple[int, str]:
    old = os.getcwd()
    os.chdir(cwd)
    try:
        r = runner.invoke(app, ["workflow", *args])
    finally:
        os.chdir(old)
    return r.exit_code, r.stderr + r.stdout


def ran(output: str) -> set[str]:
    return {line.split()[1] for line in output.splitlines() if line.startswith("done")}


def test_graph_dry_run_and_only_what_is_out_of_date(tmp_path, scheduler):
    f = three_task_file(tmp_path)
    code, out = wf("dag", str(f), cwd=tmp_path)
    assert code == 0 and out.splitlines() == ["a [batch]", "b [batch] <- a (file)", "c [batch] <- b (file)"]
    code, out = wf("dag", str(f), "--format", "dot", cwd=tmp_path)
    assert '"a" -> "b" [style=dashed];' in out and '"b" -> "c" [style=dashed];' in out
    state = ["--state-dir", str(tmp_path / "state"), "--scheduler", scheduler]
    code, out = wf("run", str(f), "-n", *state, cwd=tmp_path)
    assert code == 0 and "run      a  (never run)" in out and "3 of 3 task(s) to run" in out
    assert not (tmp_path / "out").exists()  # a dry run runs nothing
    code, out = wf("run", str(f), *state, cwd=tmp_path)
    assert code == 0 and ran(out) == {"a", "b", "c"}, out
    first = (tmp_path / "out" / "c.csv").read_text()
    code, out = wf("run", str(f), *state, cwd=tmp_path)
    assert code == 0 and ran(out) == set() and "0 of 3 task(s) to run" in out
    time.sleep(0.01)
    os.utime(tmp_path / "out" / "b.csv")  # c's input is newer: c only
    code, out = wf("run", str(f), "-n", *state, cwd=tmp_path)
    assert "skip     a" in out and "skip     b" in out and "run      c  (input newer)" in out
    code, out = wf("run", str(f), *state, cwd=tmp_path)
    assert ran(out) == {"c"} and (tmp_path / "out" / "c.csv").read_text() == first
    (tmp_path / "b.dp").write_text((tmp_path / "b.dp").read_text() + "# a comment changes the script\n")
    code, out = wf("run", str(f), "-n", *state, cwd=tmp_path)
    assert "run      b  (script changed)" in out and "run      c  (upstream runs)" in out and "skip     a" in out
    code, out = wf("run", str(f), *state, cwd=tmp_path)
    assert ran(out) == {"b", "c"}
    code, out = wf("run", str(f), "c", "--force", "a", *state, cwd=tmp_path)
    assert ran(out) == {"a", "b", "c"} and "run      a  (forced)" in out
    rows = list(csv.reader((tmp_path / "out" / "c.csv").open()))
    assert rows[0] == ["k", "c"] and len(rows) == 61
    assert sorted(os.listdir(tmp_path / "out" / "a")) == ["X.csv", "Y.csv", "Z.csv"]  # no staged file left


def test_the_layout_puts_each_task_right_of_all_it_reads(tmp_path):
    """Layers are longest paths from a source (d, reading a and c, sits right of c), rows follow
    the producers, a task linked to none goes below the others, and a cycle still gets a layout."""
    f = three_task_file(tmp_path)
    f.write_text(f.read_text() + """
[[task]]
id = "d"
scripts = ["c.dp"]
input = { type = "file", path = "out/[ac]*.csv" }
output = { type = "file", mode = "merge", path = "out/d.csv" }

[[task]]
id = "e"
scripts = ["a.dp"]
input = { type = "task", task = "a" }
output = { type = "none" }

[[task]]
id = "alone"
scripts = ["a.dp"]
input = { type = "tcp", port = 19999 }
output = { type = "none" }
""")
    loaded = load_config(f)
    assert not loaded.issues, loaded.issues
    graph, issues = build_graph(loaded.tasks)
    assert not issues
    drawn = layout(graph)
    at = {n["id"]: (n["layer"], n["row"]) for n in drawn["nodes"]}
    assert at == {"a": (0, 0), "alone": (0, 2), "b": (1, 0), "e": (1, 1), "c": (2, 0), "d": (3, 0)}
    assert [n["id"] for n in drawn["nodes"]] == ["a", "alone", "b", "e", "c", "d"]
    kinds = {n["id"]: n["kind"] for n in drawn["nodes"]}
    assert kinds == {"a": "batch", "b": "batch", "c": "batch", "d": "batch", "e": "batch", "alone": "realtime"}
    assert drawn["edges"] == [{"from": "a", "to": "b", "via": "file"}, {"from": "a", "to": "d", "via": "file"},
                              {"from": "a", "to": "e", "via": "task"}, {"from": "b", "to": "c", "via": "file"},
                              {"from": "c", "to": "d", "via": "file"}]
    for e in drawn["edges"]:  # every edge points right
        assert at[e["from"]][0] < at[e["to"]][0]
    graph.edges.append(type(graph.edges[0])("d", "a", "file"))  # a cycle: laid out all the same
    cyclic = {n["id"]: n["layer"] for n in layout(graph)["nodes"]}
    assert set(cyclic) == set(at) and cyclic["a"] == 0 and len(layout(graph)["edges"]) == 6
    assert layout(build_graph([])[0]) == {"nodes": [], "edges": []}


def test_cycles_clashes_and_missing_wildcards_are_refused(tmp_path):
    scripts(tmp_path)
    base = 'scripts = ["a.dp"]\nrouting = {{ enabled = true, key_column = "k" }}\n'
    cases = {
        "cycle": ('[[task]]\nid = "x"\n' + base + 'input = {{ type = "file", path = "y/{{k}}.csv" }}\n'
                  'output = {{ type = "file", mode = "split", path = "x/{{k}}.csv" }}\n'
                  '[[task]]\nid = "y"\n' + base + 'input = {{ type = "file", path = "x/{{k}}.csv" }}\n'
                  'output = {{ type = "file", mode = "split", path = "y/{{k}}.csv" }}\n',
                  "tasks feed each other in a cycle: x -> y -> x"),
        "clash": ('[[task]]\nid = "x"\n' + base + 'input = {{ type = "file", path = "in.csv" }}\n'
                  'output = {{ type = "file", mode = "split", path = "o/{{k}}.csv" }}\n'
                  '[[task]]\nid = "y"\n' + base + 'input = {{ type = "file", path = "in.csv" }}\n'
                  'output = {{ type = "file", mode = "merge", path = "o/all.csv" }}\n',
                  "two tasks must not write the same files"),
        "wildcard": ('[[task]]\nid = "x"\n' + base + 'input = {{ type = "file", path = "in.csv" }}\n'
                     'output = {{ type = "file", mode = "split", path = "o/{{k}}.csv" }}\n'
                     '[[task]]\nid = "y"\n' + base + 'input = {{ type = "file", path = "o/{{k}}/{{day}}.csv" }}\n'
                     'output = {{ type = "file", mode = "merge", path = "p.csv" }}\n',
                     "wildcard(s) {day} of"),
    }
    (tmp_path / "in.csv").write_text("k,v\nA,1\n")
    for name, (text, message) in cases.items():
        f = tmp_path / f"{name}.toml"
        f.write_text(text.format())
        code, out = wf("dag", str(f), cwd=tmp_path)
        assert code == 2 and message in out, (name, out)


def test_a_realtime_task_reading_a_task_gives_the_rows_of_one_chained_task(tmp_path, scheduler):
    scripts(tmp_path)

    async def body(m, client):
        p1, p2 = free_port(), free_port()
        common = {"routing": {"enabled": True, "key_column": "k"},
                  "compute_pool": {"initial_size": 2, "max_size": 2, "batch_size": 40, "batch_ms": 2}}
        m.create({"id": "chained", "scripts": [str(tmp_path / "a.dp"), str(tmp_path / "b.dp")], **common,
                  "input": {"type": "tcp", "port": p1},
                  "output": {"type": "file", "mode": "split", "path": str(tmp_path / "one" / "{k}.csv")}})
        m.create({"id": "first", "scripts": [str(tmp_path / "a.dp")], **common, "input": {"type": "tcp", "port": p2},
                  "output": {"type": "none"}})
        reader = m.create({"id": "second", "scripts": [str(tmp_path / "b.dp")], **common,
                           "input": {"type": "task", "task": "first", "filter": {"k": "X"}},
                           "output": {"type": "file", "mode": "split", "path": str(tmp_path / "two" / "{k}.csv")}})
        for tid in ("chained", "second", "first"):
            await m.start(tid)
        text = "k,v\n" + "".join(f"{'XYZ'[i % 3]},{i}\n" for i in range(3000))
        for port in (p1, p2):
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(text.encode())
            await w.drain()
            w.close()
        await wait_until(lambda: m.tasks["chained"].processed == 3000 and reader.processed == 1000)
        await m.pause("second")  # a paused reader holds its producer up: nothing is lost
        _, w = await asyncio.open_connection("127.0.0.1", p2)
        w.write(("k,v\n" + "".join(f"X,{3000 + i}\n" for i in range(300))).encode())
        await w.drain()
        w.close()
        await asyncio.sleep(0.5)
        assert reader.processed == 1000
        await m.resume("second")
        await wait_until(lambda: reader.processed == 1300)
        for tid in ("chained", "first", "second"):
            await m.stop(tid)
        assert reader.state == TaskState.STOPPED

    run_async(body, scheduler)
    one, two = read_split(tmp_path / "one"), read_split(tmp_path / "two")
    assert set(two) == {"X"} and two["X"][:1000] == one["X"]
    assert [r[1] for r in two["X"][1000:]] == [str(3000 + i) for i in range(300)]


def test_a_killed_run_leaves_nothing_that_looks_done_and_the_next_run_finishes_it(tmp_path, scheduler):
    f = three_task_file(tmp_path, n=300_000)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "dporch.cli", "workflow", "run", str(f), "--state-dir", str(tmp_path / "state"),
           "--scheduler", scheduler]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    staged = tmp_path / "out" / "a"
    end = time.monotonic() + 120
    while not (staged.exists() and any(p.name.endswith(".dporch-part") for p in staged.iterdir())):
        assert time.monotonic() < end and proc.poll() is None
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert not [p for p in staged.iterdir() if p.suffix == ".csv"]  # only hidden staged files
    assert not (tmp_path / "out" / "c.csv").exists()
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "run      a  (never run)" in done.stderr
    clean = tmp_path / "clean"
    clean.mkdir()
    three_task_file(clean, n=300_000)
    again = subprocess.run([*cmd[:5], str(clean / "tasks.toml"), "--state-dir", str(clean / "state"),
                            "--scheduler", scheduler], cwd=clean, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    for rel in ("out/a/X.csv", "out/a/Y.csv", "out/a/Z.csv"):
        assert (tmp_path / rel).read_bytes() == (clean / rel).read_bytes()
    for rel in ("out/b.csv", "out/c.csv"):  # merged files: the same rows (keys interleave freely)
        assert sorted((tmp_path / rel).read_text().splitlines()) == sorted((clean / rel).read_text().splitlines())
    assert sorted(os.listdir(tmp_path / "out" / "a")) == ["X.csv", "Y.csv", "Z.csv"]


def test_the_pipeline_example_runs_and_its_backtest_reads_the_stage_files(tmp_path, scheduler):
    """workflows/pipeline.toml as the README uses it, in a copy of the project."""
    import shutil

    from .conftest import ROOT

    shutil.copytree(ROOT / "workflows", tmp_path / "workflows")
    shutil.copytree(ROOT / "data", tmp_path / "data")
    f = tmp_path / "workflows" / "pipeline.toml"
    code, out = wf("run", str(f), "--state-dir", str(tmp_path / "state"), "--scheduler", scheduler, cwd=tmp_path)
    assert code == 0 and ran(out) == {"indicators", "screen"}, out
    stocks = sorted(p.stem for p in (tmp_path / "output" / "pipeline" / "indicators").glob("*.csv"))
    assert stocks == ["000000", "000002", "000004", "600001", "600003"]
    screen = list(csv.reader((tmp_path / "output" / "pipeline" / "screen.csv").open()))
    assert screen[0] == ["stock_code", "date", "close", "rsi", "signal", "reason"] and len(screen) > 10
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        r = runner.invoke(app, ["backtest", str(f), "--task", "pipeline-backtest", "--out", "output/bt", "--no-html"])
    finally:
        os.chdir(old)
    assert r.exit_code == 0, r.output
    traded = {row["instrument"] for row in csv.DictReader((tmp_path / "output" / "bt" / "instruments.csv").open())}
    assert traded == set(stocks)
