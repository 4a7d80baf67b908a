"""Tasks on a real LocalCluster: state machine, routing, pause/resume/stop with no row lost or
duplicated, TCP inputs with several clients, split outputs, bad rows, errors, chains, live
updates, autoscaling, failover, many tasks."""

from __future__ import annotations

import asyncio
import json

import pytest

from dporch.orchestration.task import IllegalTransition, TaskState

from .conftest import (ROOT, check_sequences, free_port, read_split, rows_text, run_async, send_tcp,
                       seq_task, wait_until)


def test_state_machine(tmp_path, seq_script, scheduler):
    async def body(m, client):
        t = m.create(seq_task("sm", seq_script, free_port(), tmp_path / "out"))
        assert t.state == TaskState.READY
        for action in ("pause", "resume", "reset"):
            with pytest.raises(IllegalTransition) as e:
                await getattr(m, action)("sm") if action != "reset" else m.reset("sm")
            assert "it is ready" in str(e.value) and "allowed now: delete, start" in str(e.value)
        await m.start("sm")
        with pytest.raises(IllegalTransition, match="allowed now: pause, stop"):
            await m.start("sm")
        await m.pause("sm")
        assert t.state == TaskState.PAUSED
        with pytest.raises(IllegalTransition):
            await m.delete("sm")
        await m.resume("sm")
        await m.stop("sm")
        assert t.state == TaskState.STOPPED and t.stats()["compute_pool_size"] == 0
        assert all(u.actor is None for u in t.pool.units.values())  # units released, routes kept
        await m.start("sm")  # Stopped -> Ready -> Running, from the checkpoint the stop took
        assert t.state == TaskState.RUNNING
        await m.stop("sm")
        await m.delete("sm")
        assert "sm" not in m.tasks

    run_async(body, scheduler)


@pytest.mark.parametrize("strategy", ["hash", "sticky"])
def test_routing_keeps_key_order_and_history(tmp_path, seq_script, scheduler, strategy):
    out = tmp_path / "out"

    async def body(m, client):
        port = free_port()
        t = m.create(seq_task("r", seq_script, port, out, routing={"strategy": strategy},
                              compute_pool={"initial_size": 3, "max_size": 3}))
        await m.start("r")
        await send_tcp(port, rows_text(2000, keys="ABCDEFGH"))
        await wait_until(lambda: t.processed == 2000)
        units = t.stats()["units"]
        assert len(units) == 3 and sum(u["keys"] for u in units) == 8
        await m.stop("r")

    run_async(body, scheduler)
    check_sequences(out, 2000)


def test_round_robin_spreads_rows_and_breaks_history(tmp_path, seq_script, scheduler):
    out = tmp_path / "out"

    async def body(m, client):
        port = free_port()
        t = m.create(seq_task("rr", seq_script, port, out, routing={"strategy": "round_robin"},
                              compute_pool={"initial_size": 2, "max_size": 2, "batch_size": 1}))
        await m.start("rr")
        await send_tcp(port, rows_text(40, keys="A"))
        await wait_until(lambda: t.processed == 40)
        assert all(u["rows"] == 20 for u in t.stats()["units"])
        await m.stop("rr")

    run_async(body, scheduler)
    rows = read_split(out)["A"]
    assert sorted(int(float(r[1])) for r in rows) == list(range(40))
    assert max(int(float(r[3])) for r in rows) == 19  # each unit saw half of the key's rows


def test_pause_resume_stop_lose_and_duplicate_nothing(tmp_path, seq_script, scheduler):
    out = tmp_path / "out"

    async def body(m, client):
        port = free_port()
        t = m.create(seq_task("p", seq_script, port, out))
        await m.start("p")
        _, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(rows_text(3000).encode())
        await w.drain()
        await wait_until(lambda: t.processed > 0)
        await m.pause("p")
        paused_at = t.processed
        # While paused nothing is read: the rest of the client's data waits in the socket.
        w.write(rows_text(2000, start=3000, header=False).encode())
        await asyncio.sleep(0.5)
        assert t.processed == paused_at and t.state == TaskState.PAUSED
        await m.resume("p")
        await w.drain()
        w.close()
        await wait_until(lambda: t.processed == 5000)
        await m.stop("p")

    run_async(body, scheduler)
    check_sequences(out, 5000)


def test_several_tcp_clients_at_once(tmp_path, seq_script, scheduler):
    out = tmp_path / "out"

    async def body(m, client):
        port = free_port()
        t = m.create(seq_task("multi", seq_script, port, out))
        await m.start("multi")
        # Each client sends its own keys (a header first), all at the same time.
        texts = []
        for c in range(5):
            lines = ["k,seq,x"] + [f"C{c}K{i % 3},{c * 1000 + i},1" for i in range(300)]
            texts.append("\n".join(lines) + "\n")
        await asyncio.gather(*(send_tcp(port, txt) for txt in texts))
        await wait_until(lambda: t.processed == 1500)
        await m.stop("multi")

    run_async(body, scheduler)
    files = read_split(out)
    assert len(files) == 15
    for key, rows in files.items():
        seqs = [int(float(r[1])) for r in rows]
        assert seqs == sorted(seqs) and len(seqs) == 100


def test_bad_rows_mid_stream_become_error_records(tmp_path, seq_script, scheduler):
    out = tmp_path / "out"
    state = tmp_path / "state"

    async def body(m, client):
        m.state_dir = state
        port = free_port()
        t = m.create(seq_task("bad", seq_script, port, out))
        await m.start("bad")
        text = "k,seq,x\nA,0,1\nA,oops,1\n,2,1\nA,3\nA,4,1\n"
        await send_tcp(port, text)
        await wait_until(lambda: t.processed == 2 and t.error_count == 3)
        errs = [e.to_dict() for e in t.errors]
        assert {(e["line"], e["column"]) for e in errs} == {(3, "seq"), (4, "k"), (5, None)}
        assert any("expected 3 cells" in e["message"] for e in errs)
        await m.stop("bad")

    run_async(body, scheduler)
    log = [json.loads(x) for x in (state / "errors" / "bad.jsonl").read_text().splitlines()]
    assert len(log) == 3 and all(r["stage"] == "input" for r in log)


def test_script_errors_are_retried_then_skipped_or_fail_the_task(tmp_path, scheduler):
    script = tmp_path / "div.dp"
    script.write_text("-- INPUT k:string, x:number --\n-- OUTPUT r --\nreturn [10 / x]\n")
    out = tmp_path / "out"

    async def body(m, client):
        base = {"scripts": [str(script)], "schema": {"columns": [{"name": "k"}, {"name": "x", "type": "number"}]},
                "routing": {"enabled": True, "key_column": "k"},
                "output": {"type": "file", "path": str(out / "{task_id}.csv"), "mode": "merge"},
                "error_handling": {"retry_count": 2, "skip_on_error": True}}
        skip = m.create({"id": "skip", **base, "input": {"type": "tcp", "port": free_port()}})
        await m.start("skip")
        await skip.push([{"k": "A", "x": 2}, {"k": "A", "x": 0}, {"k": "B", "x": 5}])
        await wait_until(lambda: skip.error_count == 1)
        assert skip.state == TaskState.RUNNING and skip.processed == 2
        assert skip.errors[-1].kind == "ZeroDivision"
        strict = m.create({"id": "strict", **base, "input": {"type": "tcp", "port": free_port()},
                           "error_handling": {"retry_count": 1, "skip_on_error": False}})
        await m.start("strict")
        await strict.push([{"k": "A", "x": 0}])
        await wait_until(lambda: strict.state == TaskState.ERROR)
        assert "ZeroDivision" in strict.last_error
        m.reset("strict")
        assert strict.state == TaskState.READY
        await m.stop("skip")

    run_async(body, scheduler)
    assert (out / "skip.csv").read_text() == "r\n5\n2\n"


def test_script_chain_and_file_input(tmp_path, scheduler):
    out = tmp_path / "out"

    async def body(m, client):
        t = m.create({"id": "chain", "scripts": [str(ROOT / "workflows/preprocess.dp"), str(ROOT / "workflows/ma_cross.dp")],
                      "routing": {"enabled": True, "key_column": "stock_code", "strategy": "sticky"},
                      "input": {"type": "file", "path": str(ROOT / "data/sample_ticks.csv")},
                      "output": {"type": "file", "path": str(out / "{stock_code}.csv"), "mode": "split"}})
        await m.start("chain")
        await wait_until(lambda: t.state == TaskState.STOPPED)  # the file ended: it stops by itself
        assert t.processed == 300 and t.reason == "input finished"

    run_async(body, scheduler)
    from dporch.engine.streaming import StreamingExecutor
    import csv as _csv
    pre = StreamingExecutor(str(ROOT / "workflows/preprocess.dp"))
    ma = StreamingExecutor(str(ROOT / "workflows/ma_cross.dp"))
    expected: dict[str, list[list[str]]] = {}
    from dporch.lang.format import csv_cell
    for row in _csv.DictReader(open(ROOT / "data/sample_ticks.csv")):
        o = pre.push(row)
        o = ma.push(o) if o else None
        if o:
            expected.setdefault(o["stock_code"], []).append([csv_cell(v) for v in o.values()])
    assert read_split(out) == expected


def test_live_updates_and_refusals(tmp_path, seq_script, scheduler):
    async def body(m, client):
        t = m.create(seq_task("u", seq_script, free_port(), tmp_path / "out"))
        await m.start("u")
        _, applied = await m.update("u", {"compute_pool": {"max_size": 2}, "output": {"buffer_size": 7}})
        assert applied == ["compute_pool.max_size", "output.buffer_size"]
        assert t.config.output.buffer_size == 7 and t.output.writer.buffer_rows == 7
        with pytest.raises(IllegalTransition, match="stop it to change routing.strategy"):
            await m.update("u", {"routing": {"strategy": "sticky"}})
        await m.stop("u")
        new, _ = await m.update("u", {"routing": {"strategy": "sticky"}})
        assert new.config.routing.strategy == "sticky" and new.state == TaskState.STOPPED

    run_async(body, scheduler)


def test_autoscale_up_and_down(tmp_path, seq_script, scheduler):
    async def body(m, client):
        t = m.create(seq_task("as", seq_script, free_port(), tmp_path / "out",
                              compute_pool={"initial_size": 1, "max_size": 3, "auto_scale": True,
                                            "scale_threshold": 0.0001, "scale_up_seconds": 0.2,
                                            "scale_down_seconds": 0.5}))
        await m.start("as")
        # Keep the pool loaded until it grows (+2 below 10 units, capped at max_size); any actor
        # round trip (> 0.05 ms) puts the load above this threshold.
        for i in range(200):
            if t.pool.size == 3:
                break
            await t.push([{"k": f"K{j}", "seq": i * 50 + j, "x": 1} for j in range(50)])
            await asyncio.sleep(0.02)
        assert t.pool.size == 3
        t.config.compute_pool.scale_threshold = 0.99  # now the idle pool shrinks back
        await wait_until(lambda: t.pool.size == 1, timeout=30)
        assert any("autoscale" in line and "+2" in line for line in t.log)
        assert any("autoscale" in line and "-1" in line for line in t.log)
        await m.stop("as")

    run_async(body, scheduler)


def test_hundred_small_tasks(tmp_path, seq_script, scheduler):
    async def body(m, client):
        tasks = []
        for i in range(100):
            cfg = seq_task(f"t{i}", seq_script, None, tmp_path / f"o{i}",
                           compute_pool={"initial_size": 1, "max_size": 1},
                           input={"type": "file", "path": str(tmp_path / "in.csv")})
            tasks.append(m.create(cfg))
        (tmp_path / "in.csv").write_text(rows_text(20))
        await asyncio.gather(*(m.start(t.config.id) for t in tasks))
        await wait_until(lambda: all(t.state == TaskState.STOPPED for t in tasks), timeout=90)
        assert all(t.processed == 20 for t in tasks)

    run_async(body, scheduler, timeout=240)
    for i in (0, 57, 99):
        check_sequences(tmp_path / f"o{i}", 20)


def test_tcp_output_reconnects_and_pauses_when_it_cannot(tmp_path, seq_script, scheduler):
    received: list[bytes] = []

    async def body(m, client):
        async def sink(reader, writer):
            received.append(await reader.read())

        server = await asyncio.start_server(sink, "127.0.0.1", 0)
        sport = server.sockets[0].getsockname()[1]
        t = m.create(seq_task("to", seq_script, free_port(), tmp_path / "o",
                              output={"type": "tcp", "host": "127.0.0.1", "port": sport, "mode": "merge",
                                      "buffer_size": 1}))
        await m.start("to")
        await t.push([{"k": "A", "seq": 0, "x": 1}])
        await wait_until(lambda: t.processed == 1)
        await asyncio.sleep(0.2)
        server.close()
        await server.wait_closed()
        t.output.attempts = 2
        if t.output.writer is not None:
            t.output.writer.close()
        await t.push([{"k": "A", "seq": 1, "x": 1}])
        await wait_until(lambda: t.state == TaskState.PAUSED, timeout=20)
        assert any(e.stage == "output" for e in t.errors)
        await m.stop("to")

    run_async(body, scheduler)
    assert received and received[0].startswith(b"k,seq,prev,idx\nA,0,,0\n")
