"""The cost model of a realtime task and a discrete-event simulation of it (docs/scaling.md).

A tick costs CPU in three places: the orchestrator (read, check, route, batch, write the output
files), the compute unit its key routes to (run the script), and the sender. Each actor call adds
a fixed cost on both sides, so what a tick costs depends on how full the micro-batches run:

    orchestrator CPU per tick = o_tick + o_call / B        units: u_tick + u_call / B

A batch for one unit closes when it holds ``batch_size`` rows or its oldest row has waited
``batch_ms``; rows arrive in chunks of a socket read (``chunk`` rows, split over the units at
once), and a timer fires only when the event loop is free, so flat out
B = min(batch_size, (1 + ceil(rate * batch_ms / chunk)) * chunk / W).  The orchestrator is one
process: it saturates at  1 / (o_tick + o_call / B)  ticks/s, whatever the number of workers,
and B shrinks as W grows. :func:`capacity` solves for the highest rate every part can carry;
:func:`simulate` plays the same system out event by event (in-flight limits, the batch timer,
backpressure, the wire's latency) to check the closed form and to give latencies.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

__all__ = ["Costs", "capacity", "simulate"]


@dataclass(frozen=True)
class Costs:
    """Measured costs (seconds, bytes)."""

    o_tick: float  # orchestrator CPU per tick
    o_call: float  # orchestrator CPU per actor call (send, result, bookkeeping)
    u_tick: float  # unit CPU per tick
    u_call: float  # unit CPU per call
    f_tick: float  # sender CPU per tick
    wire: float  # an actor call's round trip less its CPU: network and event-loop wake-ups
    bytes_in: float  # per tick, orchestrator -> unit (the batch as sent)
    bytes_out: float  # per tick, unit -> orchestrator (the result)
    bytes_feed: float  # per tick, sender -> orchestrator (a CSV line)


def batch_rows(rate: float, workers: int, batch_size: int, batch_ms: float, chunk: float) -> float:
    """Rows per actor call when the orchestrator runs flat out at ``rate`` ticks/s: a chunk's
    rows split over the units at once; a unit's partial batch closes on its timer, which fires
    only once the loop is free, so it also takes the rows of every chunk read until then."""
    chunks = 1 + math.ceil(rate * batch_ms / 1000.0 / chunk)
    return max(1.0, min(batch_size, chunks * chunk / workers))


def capacity(c: Costs, workers: int, *, cores: float | None = None, batch_size: int = 1000,
             batch_ms: float = 5.0, chunk: float = 1300.0, nic: float | None = None) -> dict:
    """The highest sustainable rate and what bounds it. ``cores``: the CPUs every process shares
    (None: each worker and the orchestrator has its own core); ``nic``: the orchestrator's
    network bandwidth in bytes/s (None: unbounded)."""

    def demand(rate: float) -> dict[str, float]:
        b = batch_rows(rate, workers, batch_size, batch_ms, chunk)
        o = rate * (c.o_tick + c.o_call / b)
        u = rate * (c.u_tick + c.u_call / b)
        d = {"orchestrator": o, "units": u / min(workers, cores or workers)}
        if cores is not None:
            d["cores"] = (o + u + rate * c.f_tick) / cores
        if nic is not None:
            d["network"] = rate * (c.bytes_in + c.bytes_out + c.bytes_feed) / nic
        return d

    lo, hi = 1.0, 1e8
    while hi / lo > 1.001:  # every demand grows with the rate: bisect for the highest feasible one
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if max(demand(mid).values()) <= 1.0 else (lo, mid)
    d = demand(lo)
    return {"rate": lo, "bound": max(d, key=d.__getitem__),
            "batch_rows": batch_rows(lo, workers, batch_size, batch_ms, chunk)}


def simulate(c: Costs, workers: int, *, rate: float | None = None, seconds: float = 2.0, batch_size: int = 1000,
             batch_ms: float = 5.0, chunk: float = 1300.0, in_flight: int = 4) -> dict:
    """Play ``seconds`` of a task with one core per process. ``rate``: ticks/s sent every
    millisecond (None: chunks of ``chunk`` rows as fast as backpressure allows). Returns the throughput, rows per call and the
    tick-to-result latency percentiles (ms)."""
    queue: list[tuple[float, int, str, tuple]] = []
    order = 0

    def at(t: float, kind: str, *args: object) -> None:
        nonlocal order
        order += 1
        heapq.heappush(queue, (t, order, kind, args))

    pending: list[list[float]] = [[] for _ in range(workers)]  # arrival times of unbatched rows
    closed: list[list[list[float]]] = [[] for _ in range(workers)]  # closed, unsent batches
    flying = [0] * workers
    unit_free = [0.0] * workers
    timer_set = [False] * workers
    orch_free = 0.0  # the orchestrator is one core: its jobs run one after the other
    done = calls = 0
    warm = seconds / 4  # counted from here
    lat: list[float] = []
    share = [1.0 / workers] * workers  # hash routing spreads keys evenly
    k = max(1, round(chunk if rate is None else rate / 1000))  # a paced sender writes every millisecond

    def orch(t: float, cost: float) -> float:
        nonlocal orch_free
        orch_free = max(orch_free, t) + cost
        return orch_free

    def pump(t: float, u: int) -> None:
        nonlocal calls
        while closed[u] and flying[u] < in_flight:
            batch = closed[u].pop(0)
            sent = orch(t, c.o_call)
            flying[u] += 1
            start = max(unit_free[u], sent + c.wire / 2)
            unit_free[u] = start + c.u_call + c.u_tick * len(batch)
            at(unit_free[u] + c.wire / 2, "result", u, batch)

    def close(t: float, u: int) -> None:
        if pending[u]:
            closed[u].append(pending[u])
            pending[u] = []
        pump(t, u)

    def backlog() -> bool:
        return any(len(closed[u]) + flying[u] > 2 * in_flight for u in range(workers))

    at(0.0, "chunk")
    carry = [0.0] * workers
    while queue:
        t, _, kind, args = heapq.heappop(queue)
        if t > seconds:
            break
        if kind == "chunk":
            if rate is None and backlog():
                at(t + 1e-4, "chunk")  # the reader waits for space
                continue
            ready = orch(t, c.o_tick * k)
            for u in range(workers):
                carry[u] += k * share[u]
                n = int(carry[u])
                carry[u] -= n
                pending[u].extend([t] * n)
                while len(pending[u]) >= batch_size:
                    closed[u].append(pending[u][:batch_size])
                    pending[u] = pending[u][batch_size:]
                if pending[u] and not timer_set[u]:
                    timer_set[u] = True
                    at(ready + batch_ms / 1000.0, "timer", u)
                pump(ready, u)
            at(ready if rate is None else t + k / rate, "chunk")
        elif kind == "timer":
            (u,) = args
            timer_set[u] = False
            close(max(t, orch_free), u)
        else:
            u, batch = args
            handled = orch(t, 0.0)
            flying[u] -= 1
            if t > warm:
                done += len(batch)
                calls += 1
                lat.extend(handled - a for a in batch[:: max(1, len(batch) // 8)])
            pump(handled, u)
    lat.sort()

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(len(lat) * p))] * 1000 if lat else float("nan")

    return {"rate": done / (seconds - warm), "batch_rows": done / max(1, calls), "p50_ms": pct(0.5), "p99_ms": pct(0.99)}
