#!/bin/sh
# Runs one libFuzzer harness for a while:
#   run.sh HARNESS SEED_DIR WORK_DIR SECONDS
# New inputs go to WORK_DIR/corpus (the committed seeds stay untouched), a
# crash, leak, timeout or UB report leaves its input in WORK_DIR and fails.
set -e
bin=$1 seeds=$2 work=$3 seconds=$4
mkdir -p "$work/corpus"
set -- "$work/corpus"
if [ -d "$seeds" ]; then set -- "$@" "$seeds"; else echo "note: no seed corpus $seeds" >&2; fi
log="$work/last-run.log"
status=0
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$work/" "$@" > "$log" 2>&1 || status=$?
# The last status line carries the coverage; the final stats the executions.
name=$(basename "$bin")
cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\).*/\1 edges, \2 features/p')
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
echo "$name: ${execs:-?} executions in ${seconds} s, coverage ${cov:-?}"
if [ "$status" -ne 0 ]; then
  tail -n 60 "$log"
  echo "$name failed (status $status); inputs kept in $work/" >&2
  exit 1
fi
