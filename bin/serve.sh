#!/usr/bin/env bash
# `make serve`: a Dask scheduler, Dask workers and `dporch serve` joined to them.
#
# Everything listens on 127.0.0.1 unless DPORCH_DASK_HOST says otherwise (0.0.0.0 exposes the
# scheduler, the workers and the dashboard to the network; the API stays on 127.0.0.1).
# Ctrl-C stops dporch serve first (it drains its tasks and flushes their outputs), then the
# workers and the scheduler; a clean stop exits 0.
#
# The scheduler loads dporch's preload: the dashboard gets a dporch page (/dporch, in its top
# menu) fed by dporch serve's events. dporch serve also serves its web console and /metrics.
#
# Environment: DPORCH_DASK_HOST (127.0.0.1), DPORCH_SCHEDULER_PORT (8786),
# DPORCH_DASHBOARD_PORT (8787; Dask takes a free port when it is in use, and the address
# printed is the real one), DPORCH_API_PORT (8888), DPORCH_WEB (127.0.0.1:8080, the web
# console; "off" for none), DPORCH_WORKERS (2), DPORCH_CONFIG (tasks.toml),
# DPORCH_STATE_DIR (.dporch: registry, checkpoints, logs).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
HOST=${DPORCH_DASK_HOST:-127.0.0.1}
SCHED_PORT=${DPORCH_SCHEDULER_PORT:-8786}
DASH_PORT=${DPORCH_DASHBOARD_PORT:-8787}
API_PORT=${DPORCH_API_PORT:-8888}
WORKERS=${DPORCH_WORKERS:-2}
CONFIG=${DPORCH_CONFIG:-tasks.toml}
STATE_DIR=${DPORCH_STATE_DIR:-.dporch}
WEB=${DPORCH_WEB:-127.0.0.1:8080}
web_opt=(--web "$WEB")
[ "$WEB" = off ] && web_opt=(--no-web)
CONTACT=$HOST
[ "$HOST" = 0.0.0.0 ] && CONTACT=127.0.0.1
SCHED_LOG=.dask-scheduler.log

scheduler_pid=
worker_pids=()
serve_pid=
serve_status=0

# Stop processes with SIGTERM, and SIGKILL those still alive after 15 s.
terminate() {
    [ $# -gt 0 ] || return 0
    kill -TERM "$@" 2>/dev/null
    for _ in $(seq 150); do
        kill -0 "$@" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$@" 2>/dev/null
    wait "$@" 2>/dev/null
}

# The Dask processes run in their own sessions (setsid): a Ctrl-C in the terminal reaches only
# this script and dporch serve, so the cluster is still there while serve drains its tasks.
# Then the workers stop while their scheduler is still there to release them, then the scheduler.
cleanup() {
    trap - INT TERM EXIT
    if [ -n "$serve_pid" ]; then
        kill -INT "$serve_pid" 2>/dev/null
        wait "$serve_pid"
        serve_status=$?
        serve_pid=
    fi
    terminate "${worker_pids[@]}"
    [ -n "$scheduler_pid" ] && terminate "$scheduler_pid"
}
interrupted() {
    cleanup
    exit "$serve_status"
}
trap interrupted INT TERM
trap cleanup EXIT

fail() {
    echo "error: $1" >&2
    [ -n "${2:-}" ] && tail -n 5 "$2" | sed 's/^/  /' >&2
    exit 1
}

: >"$SCHED_LOG"  # truncated here, not in the child: the wait below must not read an old log
setsid "$BIN/dask" scheduler --host "$HOST" --port "$SCHED_PORT" --dashboard-address "$HOST:$DASH_PORT" \
    --preload dporch.dashboard.preload >"$SCHED_LOG" 2>&1 &
scheduler_pid=$!
# The scheduler logs the addresses it really took (the dashboard moves when its port is in use).
for _ in $(seq 600); do
    grep -q "dashboard at:" "$SCHED_LOG" && break
    kill -0 "$scheduler_pid" 2>/dev/null || fail "the Dask scheduler did not start (log: $SCHED_LOG):" "$SCHED_LOG"
    sleep 0.1
done
dashboard=$(sed -n 's/.*dashboard at:[[:space:]]*//p' "$SCHED_LOG" | head -n 1)
[ -n "$dashboard" ] || fail "the Dask scheduler gave no dashboard address within 60 s (log: $SCHED_LOG)" "$SCHED_LOG"
scheduler="tcp://$CONTACT:$SCHED_PORT"

worker_host=(--host "$HOST")
[ "$HOST" = 0.0.0.0 ] && worker_host=()
for i in $(seq "$WORKERS"); do
    setsid "$BIN/dask" worker "$scheduler" --nworkers 1 --nthreads 1 --name "worker-$i" "${worker_host[@]}" \
        --dashboard-address "$HOST:0" >".dask-worker-$i.log" 2>&1 &
    worker_pids+=($!)
done

echo "Dask scheduler $scheduler, dashboard $dashboard (dporch page: ${dashboard%status}dporch)" >&2
case "$dashboard" in
    *":$DASH_PORT/"*) ;;
    *) echo "note: port $DASH_PORT was in use, so the dashboard took another port" >&2 ;;
esac
"$BIN/dporch" serve --scheduler "$scheduler" --config "$CONFIG" --port "$API_PORT" --state-dir "$STATE_DIR" \
    "${web_opt[@]}" &
serve_pid=$!
wait "$serve_pid"
serve_status=$?
serve_pid=
exit "$serve_status"
