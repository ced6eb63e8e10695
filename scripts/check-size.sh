#!/bin/sh
# Checks a stripped binary against its target's line in scripts/size-budget.
#   sh scripts/check-size.sh TARGET FILE
set -e
root=$(cd "$(dirname "$0")/.." && pwd)
target=$1
file=$2
budget=$(awk -v t="$target" '$1 == t { print $2 }' "$root/scripts/size-budget")
[ -n "$budget" ] || { echo "no budget for '$target' in scripts/size-budget" >&2; exit 1; }
[ -f "$file" ] || { echo "SKIPPED: $file was not built"; exit 77; }
size=$(wc -c <"$file")
echo "$target: $size bytes (budget $budget, $((size * 100 / budget))%)"
[ "$size" -le "$budget" ] || { echo "$target: $file is over its size budget" >&2; exit 1; }
