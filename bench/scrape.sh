#!/bin/sh
# Scrape benchmark: the cost of serving Prometheus /metrics, metrics-agent
# side by side with prometheus-node-exporter (its default collectors) on the
# same machine in the same run.
#
#   make bench && bench/scrape.sh              # 1000 requests per run, 3 rounds
#   bench/scrape.sh 2000 5
#
# Both servers listen on free loopback ports. After a warm-up, each round runs
# scrape_bench (REQUESTS sequential GETs on one keep-alive connection) against
# both, alternating which goes first (A B, B A, A B, ...) so that neither
# always follows the other. Reported per server: the median of the round
# medians, the response size, the number of series (non-comment lines), the
# connections each run needed, the server's CPU time per scrape and per second
# while nobody scrapes, and its RSS after the runs. Both servers are stopped at
# the end.
#
# Environment: AGENT, SCRAPE_BENCH and NODE_EXPORTER override the binaries
# (default build/cmake/metrics-agent, build/cmake/scrape_bench and
# /usr/bin/prometheus-node-exporter); WARMUP sets the untimed requests before
# each run (default 50); IDLE the seconds over which each server's CPU use
# without scrapes is measured first (default 5); AGENT_ARGS and
# NODE_EXPORTER_ARGS add flags.
set -eu

usage() {
    echo "usage: $0 [REQUESTS [ROUNDS]]   (defaults: 1000 3)" >&2
    exit 2
}
[ $# -le 2 ] || usage
requests=${1:-1000}
rounds=${2:-3}
warmup=${WARMUP:-50}
idle=${IDLE:-5}
case $requests in '' | *[!0-9]* | 0) usage ;; esac
case $rounds in '' | *[!0-9]* | 0) usage ;; esac
case $warmup in '' | *[!0-9]*) usage ;; esac
case $idle in '' | *[!0-9]* | 0) usage ;; esac

root=$(cd "$(dirname "$0")/.." && pwd)
agent=${AGENT:-$root/build/cmake/metrics-agent}
bench=${SCRAPE_BENCH:-$root/build/cmake/scrape_bench}
exporter=${NODE_EXPORTER:-/usr/bin/prometheus-node-exporter}
for bin in "$agent" "$bench"; do
    if [ ! -x "$bin" ]; then
        echo "$0: $bin not found; run 'make bench' first" >&2
        exit 1
    fi
done
if [ ! -x "$exporter" ]; then
    echo "$0: $exporter not found; install Debian's prometheus-node-exporter" \
        "(apt-get install prometheus-node-exporter) or set NODE_EXPORTER" >&2
    exit 1
fi

command_line="$0${*:+ $*}"
for var in AGENT SCRAPE_BENCH NODE_EXPORTER WARMUP IDLE AGENT_ARGS NODE_EXPORTER_ARGS; do
    eval "value=\${$var:-}"
    # shellcheck disable=SC2154  # value is set by eval
    [ -n "$value" ] && command_line="$var='$value' $command_line"
done

# shellcheck source=bench/listen.sh
. "$(dirname "$0")/listen.sh"

# A port in 20000-29999 (below the kernel's ephemeral range) that nothing
# listens on and that differs from $1.
free_port() {
    while :; do
        p=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 10000))
        [ "$p" != "${1:-}" ] && ! listening "$p" && echo "$p" && return
    done
}

tmp=$(mktemp -d)
agent_pid=
exporter_pid=
stop() {  # pid
    kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
# shellcheck disable=SC2317  # called through trap
cleanup() {
    [ -n "$agent_pid" ] && stop "$agent_pid"
    [ -n "$exporter_pid" ] && stop "$exporter_pid"
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts "$@" in the background as server $name listening on $port and waits
# until it answers GET /metrics with 200; sets $started_pid.
start_server() {
    "$@" 2>"$tmp/$name.log" >&2 &
    started_pid=$!
    for _ in $(seq 100); do
        if ! kill -0 "$started_pid" 2>/dev/null; then
            echo "$0: $name exited at start:" >&2
            cat "$tmp/$name.log" >&2
            exit 1
        fi
        if listening_pid "$started_pid" "$port" &&
            "$bench" --port "$port" --requests 1 --warmup 0 --timeout 2 >/dev/null 2>&1; then
            return
        fi
        sleep 0.1
    done
    echo "$0: $name did not answer on 127.0.0.1:$port/metrics within 10 s:" >&2
    cat "$tmp/$name.log" >&2
    exit 1
}

# Nanoseconds of CPU the process has used, summed over its threads
# (proc(5) /proc/PID/task/TID/schedstat, first field); falls back to
# utime + stime in clock ticks where schedstat is missing.
cpu_ns() {
    if [ -r "/proc/$1/schedstat" ]; then
        cat "/proc/$1/task"/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'
    else
        awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.0f\n", ($12 + $13) * 1e9 / hz }' "/proc/$1/stat"
    fi
}

# Busy and total jiffies of the whole machine (proc(5) /proc/stat "cpu" line;
# guest time is already counted in user).
machine_cpu() { awk '/^cpu / { t = 0; for (i = 2; i <= 9 && i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }

status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# The value of "key" $2 in the flat one-line JSON object $1.
field() { printf '%s\n' "$1" | sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p"; }

# The values of "key" $2 in every line of the JSON-lines file $1.
column() {
    while IFS= read -r line; do field "$line" "$2"; done <"$1"
}

# Nearest-rank median of the numbers on stdin.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

agent_port=$(free_port)
exporter_port=$(free_port "$agent_port")

name=agent port=$agent_port
# shellcheck disable=SC2086  # AGENT_ARGS is a list of flags
set -- "$agent" --listen "127.0.0.1:$agent_port" ${AGENT_ARGS:-}
agent_cmd="$*"
start_server "$@"
agent_pid=$started_pid

name=exporter port=$exporter_port
# shellcheck disable=SC2086  # NODE_EXPORTER_ARGS is a list of flags
set -- "$exporter" "--web.listen-address=127.0.0.1:$exporter_port" ${NODE_EXPORTER_ARGS:-}
exporter_cmd="$*"
start_server "$@"
exporter_pid=$started_pid

agent_version=$("$agent" --version 2>&1 | head -n 1)
exporter_version=$("$exporter" --version 2>&1 | head -n 1)

pid_of() { if [ "$1" = agent ]; then echo "$agent_pid"; else echo "$exporter_pid"; fi; }
port_of() { if [ "$1" = agent ]; then echo "$agent_port"; else echo "$exporter_port"; fi; }

# Warm-up: both servers have served a couple of hundred scrapes before timing.
for target in agent exporter; do
    "$bench" --port "$(port_of $target)" --requests 100 --warmup 100 >/dev/null
    status_kib "$(pid_of $target)" VmRSS >"$tmp/$target.rss_before"
    : >"$tmp/$target.jsonl"
    : >"$tmp/$target.cpu"
done

# Idle cost: the agent collects every tick whether or not anyone scrapes,
# node_exporter collects on each scrape.
for target in agent exporter; do cpu_ns "$(pid_of $target)" >"$tmp/$target.idle"; done
idle_started_ns=$(date +%s%N)
sleep "$idle"
idle_ns=$(($(date +%s%N) - idle_started_ns))
for target in agent exporter; do
    echo $(($(cpu_ns "$(pid_of $target)") - $(cat "$tmp/$target.idle"))) >"$tmp/$target.idle"
done

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
machine_before=$(machine_cpu)
started_ns=$(date +%s%N)

run() {  # target
    pid=$(pid_of "$1")
    before=$(cpu_ns "$pid")
    out=$("$bench" --port "$(port_of "$1")" --requests "$requests" --warmup "$warmup" --json)
    after=$(cpu_ns "$pid")
    printf '%s\n' "$out" >>"$tmp/$1.jsonl"
    echo $((after - before)) >>"$tmp/$1.cpu"
    printf '  round %d  %-8s  median %8s ms  p99 %8s ms  connections %s\n' "$round" "$1" \
        "$(field "$out" median_ms)" "$(field "$out" p99_ms)" "$(field "$out" connections)"
}

echo "scrape benchmark: $rounds rounds of $requests sequential GET /metrics per server" \
    "(each after $warmup untimed), one keep-alive connection per run"
round=1
while [ "$round" -le "$rounds" ]; do
    if [ $((round % 2)) = 1 ]; then
        run agent
        run exporter
    else
        run exporter
        run agent
    fi
    round=$((round + 1))
done

elapsed_ns=$(($(date +%s%N) - started_ns))
machine_busy=$(printf '%s %s\n' "$machine_before" "$(machine_cpu)" |
    awk '{ t = $4 - $2; if (t > 0) printf "%.0f", 100 * ($3 - $1) / t; else print 0 }')
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
servers_busy=$(cat "$tmp/agent.cpu" "$tmp/exporter.cpu" |
    awk -v wall="$elapsed_ns" -v cpus="$(nproc)" '{ s += $1 } END { printf "%.0f", 100 * s / (wall * cpus) }')

for target in agent exporter; do
    pid=$(pid_of $target)
    status_kib "$pid" VmRSS >"$tmp/$target.rss"
    status_kib "$pid" VmHWM >"$tmp/$target.hwm"
    "$bench" --port "$(port_of $target)" --requests 1 --warmup 0 --save "$tmp/$target.txt" >/dev/null
    grep -cv -e '^#' -e '^[[:space:]]*$' "$tmp/$target.txt" >"$tmp/$target.series" || true
done

# Both stopped before the report so that nothing is left running if it fails.
stop "$agent_pid"
agent_pid=
stop "$exporter_pid"
exporter_pid=

round_median() {  # target key: the nearest-rank median over the rounds
    column "$tmp/$1.jsonl" "$2" | median
}
cpu_per_scrape() {  # target
    awk -v n=$((requests + warmup)) '{ s += $1; r++ } END { printf "%.3f", s / (r * n) / 1e6 }' "$tmp/$1.cpu"
}
idle_cpu() {  # target: CPU ms per second without scrapes
    awk -v ns="$(cat "$tmp/$1.idle")" -v wall="$idle_ns" 'BEGIN { printf "%.3f", ns / wall * 1e3 }'
}
both() {  # label command...: one row, the command run for each target
    label=$1
    shift
    printf '%-32s %-26s %s\n' "$label" "$("$@" agent)" "$("$@" exporter)"
}
per_round() { column "$tmp/$1.jsonl" median_ms | paste -sd' ' -; }
stat_of() { key=$1 && shift && round_median "$1" "$key"; }
min_max() {
    printf '%s / %s' "$(column "$tmp/$1.jsonl" min_ms | sort -g | head -n 1)" \
        "$(column "$tmp/$1.jsonl" max_ms | sort -g | tail -n 1)"
}
wire() { printf '%s (%s)' "$(round_median "$1" wire_bytes_median)" "$(column "$tmp/$1.jsonl" framing | sort -u | paste -sd' ' -)"; }
connections() { column "$tmp/$1.jsonl" connections | sort -u | paste -sd' ' -; }
series() { cat "$tmp/$1.series"; }
rss() { printf '%s / %s' "$(mib "$(cat "$tmp/$1.rss_before")")" "$(mib "$(cat "$tmp/$1.rss")")"; }
hwm() { mib "$(cat "$tmp/$1.hwm")"; }
version() {
    if [ "$1" = agent ]; then
        echo "$agent_version" | awk '{ print $NF }'
    else
        echo "$exporter_version" | awk '{ print $3 }'
    fi
}

echo
printf '%-32s %-26s %s\n' "" "metrics-agent" "prometheus-node-exporter"
both "version" version
both "median ms, per round" per_round
both "median ms, median of rounds" stat_of median_ms
both "p90 ms, median of rounds" stat_of p90_ms
both "p99 ms, median of rounds" stat_of p99_ms
both "min / max ms, all rounds" min_max
both "server CPU ms per scrape" cpu_per_scrape
both "server CPU ms per s, idle" idle_cpu
both "body bytes (median)" stat_of body_bytes_median
both "bytes on the wire (median)" wire
both "series (non-comment lines)" series
both "connections per run" connections
both "VmRSS MiB before / after runs" rss
both "VmHWM MiB (peak)" hwm
echo
echo "machine: $(nproc) CPUs, $(uname -sr); $((elapsed_ns / 1000000000)) s of rounds;" \
    "all CPUs ${machine_busy}% busy during them (the two servers ${servers_busy}%," \
    "the rest the client and everything else running); load average $load_before before, $load_after after"
echo "latency: from writing the request to the last byte of the response, nearest-rank percentiles;" \
    "server CPU: the server's own CPU time over its runs (warm-up included) per request"
echo "command: $command_line"
echo "  agent:    $agent_cmd"
echo "  exporter: $exporter_cmd"
echo "  client:   $bench --port PORT --requests $requests --warmup $warmup --json"
