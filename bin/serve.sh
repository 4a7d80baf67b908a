#!/usr/bin/env bash
# `make serve`: a Dask scheduler, two Dask workers and `dporch serve` joined to them.
# Ctrl-C stops all of them (dporch serve first drains its tasks and flushes outputs).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
SCHED_PORT=${DPORCH_SCHEDULER_PORT:-8786}
API_PORT=${DPORCH_API_PORT:-8888}
pids=()
stop() {
    trap - INT TERM EXIT
    [ -n "${serve_pid:-}" ] && kill -INT "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
    kill "${pids[@]}" 2>/dev/null
    wait 2>/dev/null
}
trap stop INT TERM EXIT
"$BIN/dask" scheduler --port "$SCHED_PORT" --dashboard-address :8787 >/dev/null 2>.dask-scheduler.log &
pids+=($!)
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$SCHED_PORT") 2>/dev/null && break
    sleep 0.1
done
for i in 1 2; do
    "$BIN/dask" worker "tcp://127.0.0.1:$SCHED_PORT" --nworkers 1 --nthreads 1 --name "worker-$i" \
        >/dev/null 2>".dask-worker-$i.log" &
    pids+=($!)
done
echo "Dask scheduler tcp://127.0.0.1:$SCHED_PORT, dashboard http://127.0.0.1:8787/status" >&2
"$BIN/dporch" serve --scheduler "tcp://127.0.0.1:$SCHED_PORT" --config tasks.toml --port "$API_PORT" &
serve_pid=$!
wait "$serve_pid"
