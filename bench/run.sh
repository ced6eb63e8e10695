#!/bin/sh
# Fan-out benchmark: start the agent on a free loopback port, hold CLIENTS
# WebSocket clients on it for SECONDS with load_client, print the result and
# stop the agent.
#
#   make bench && bench/run.sh 10000 60
#   bench/run.sh 2000 20 --rich-fraction 0.1 --source-ips 4 --json
#   bench/run.sh compare      # the agent next to bench/floor_server, see compare.py
#
# Environment: AGENT and LOAD_CLIENT override the binaries (default
# build/cmake/metrics-agent and build/cmake/load_client), AGENT_ARGS adds agent
# flags, PORT fixes the port (default: a free one in 20000-29999, below the
# kernel's ephemeral range so the clients' own ports never collide with it).
set -eu

# bench/run.sh compare [...]: the agent and the floor in one run (bench/compare.py).
if [ "${1:-}" = compare ]; then
    shift
    exec /usr/bin/python3 "$(dirname "$0")/compare.py" "$@"
fi

usage() {
    echo "usage: $0 CLIENTS SECONDS [load_client options]" >&2
    exit 2
}
[ $# -ge 2 ] || usage
clients=$1
seconds=$2
shift 2
case $clients in '' | *[!0-9]*) usage ;; esac
case $seconds in '' | *[!0-9]*) usage ;; esac

root=$(cd "$(dirname "$0")/.." && pwd)
agent=${AGENT:-$root/build/cmake/metrics-agent}
client=${LOAD_CLIENT:-$root/build/cmake/load_client}
for bin in "$agent" "$client"; do
    if [ ! -x "$bin" ]; then
        echo "$0: $bin not found; run 'make bench' first" >&2
        exit 1
    fi
done

# With --json, stdout carries only load_client's JSON line.
info_fd=1
for arg in "$@"; do
    [ "$arg" = --json ] && info_fd=2
done
info() { echo "$*" >&"$info_fd"; }

hard=$(awk '/^Max open files/ { print $5 }' /proc/self/limits)
if [ "$hard" != unlimited ] && [ "$hard" -lt $((clients + 200)) ]; then
    echo "$0: warning: the open-file hard limit ($hard) is too low for $clients clients" >&2
fi

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# shellcheck source=bench/listen.sh
. "$(dirname "$0")/listen.sh"

log=$(mktemp)
pid=
# shellcheck disable=SC2317  # called through trap
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        sleep 1
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$log"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Start the agent; if the port turns out to be taken, try another.
attempt=0
while :; do
    attempt=$((attempt + 1))
    if [ -n "${PORT:-}" ]; then
        port=$PORT
    else
        port=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 10000))
        if listening "$port"; then continue; fi
    fi
    started=$(now_ms)
    # shellcheck disable=SC2086  # AGENT_ARGS is a list of flags
    "$agent" --listen "127.0.0.1:$port" --max-clients $((clients + 100)) ${AGENT_ARGS:-} 2>"$log" &
    pid=$!
    ready=0
    for _ in $(seq 50); do
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        if listening_pid "$pid" "$port"; then ready=1 && break; fi
        sleep 0.1
    done
    [ "$ready" = 1 ] && break
    status=0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        wait "$pid" || true
        echo "$0: the agent did not listen on port $port within 5 s" >&2
        status=1
    else
        wait "$pid" || status=$?
    fi
    pid=
    if [ -n "${PORT:-}" ] || [ "$attempt" -ge 5 ] || [ "$status" != 1 ]; then
        echo "$0: the agent failed to start (exit $status):" >&2
        cat "$log" >&2
        exit 1
    fi
done

# Idle footprint: 3 s after start, before any client.
wait_ms=$((started + 3000 - $(now_ms)))
[ "$wait_ms" -gt 0 ] && sleep "$((wait_ms / 1000)).$(printf '%03d' $((wait_ms % 1000)))"
idle_kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
info "agent pid $pid on 127.0.0.1:$port (--max-clients $((clients + 100))${AGENT_ARGS:+ $AGENT_ARGS})," \
    "idle rss $(awk -v k="$idle_kib" 'BEGIN { printf "%.1f", k / 1024 }') MiB 3 s after start"

client_status=0
"$client" --port "$port" --pid "$pid" --clients "$clients" --duration "$seconds" "$@" || client_status=$?

# SIGTERM: the agent closes every client with 1001 and exits within a second.
stop_started=$(now_ms)
kill -TERM "$pid"
for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
if kill -0 "$pid" 2>/dev/null; then
    echo "$0: the agent did not exit within 5 s of SIGTERM; killing it" >&2
    kill -KILL "$pid"
fi
agent_status=0
wait "$pid" || agent_status=$?
info "agent stopped $(($(now_ms) - stop_started)) ms after SIGTERM, exit $agent_status"
pid=
if [ -s "$log" ]; then
    info "agent log, last lines:"
    tail -n 5 "$log" | sed 's/^/  /' >&"$info_fd"
fi
exit "$client_status"
