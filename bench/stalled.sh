#!/bin/sh
# Stalled readers: READERS clients that read (load_client on the flat stream)
# next to STALLED clients that never read (bench/stalled_clients.py, on the
# rich stream every second), for SECONDS; then the same readers alone. Prints
# both load_client reports, how many stalled clients the agent dropped, the
# agent's peak RSS and its backlog drop counter.
#
#   make bench && bench/stalled.sh            # 50 readers, 1,000 stalled, 120 s
#   bench/stalled.sh 50 1000 120 65536        # READERS STALLED SECONDS MAX_BACKLOG (defaults)
#   AGENT_ARGS="--ws-ping 300" bench/stalled.sh   # drops by backlog before the 60 s ping timeout
set -eu
readers=${1:-50}
stalled=${2:-1000}
seconds=${3:-120}
backlog=${4:-65536}
root=$(cd "$(dirname "$0")/.." && pwd)
agent=${AGENT:-$root/build/cmake/metrics-agent}
client=${LOAD_CLIENT:-$root/build/cmake/load_client}

run() {  # run STALLED_COUNT
    port=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 10000))
    # shellcheck disable=SC2086  # AGENT_ARGS is a list of flags
    "$agent" --listen "127.0.0.1:$port" --max-backlog "$backlog" ${AGENT_ARGS:-} 2>/dev/null &
    pid=$!
    sleep 1.5
    idle=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
    spid=
    if [ "$1" -gt 0 ]; then
        /usr/bin/python3 "$root/bench/stalled_clients.py" "$port" "$1" $((seconds + 8)) &
        spid=$!
        sleep 6
    fi
    "$client" --port "$port" --pid "$pid" --clients "$readers" --duration "$seconds" --warmup 2 || true
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
    drops=$(/usr/bin/python3 -c 'import sys, urllib.request
for l in urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1]).read().decode().splitlines():
    if l.startswith("metrics_agent_clients_dropped_total"): print("  " + l)' "$port")
    [ -n "$spid" ] && wait "$spid"
    kill -TERM "$pid"
    wait "$pid" || true
    echo "agent: idle RSS $idle KiB, peak RSS (VmHWM) $hwm KiB, --max-backlog $backlog ${AGENT_ARGS:-}"
    echo "$drops"
}

echo "== $readers readers next to $stalled stalled clients, ${seconds} s"
run "$stalled"
echo "== $readers readers alone, ${seconds} s"
run 0
