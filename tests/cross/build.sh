#!/bin/sh
# Builds one target's static agent and its cross-built unit tests.
#   sh tests/cross/build.sh TRIPLE|native OUTDIR
# OUTDIR/metrics-agent: the release binary (scripts/static-build.sh).
# OUTDIR/unit_tests: a subset of tests/unit_*.cpp (pure parsers, codecs,
# crypto, serialization, the collector on recorded /proc trees) with
# GoogleTest compiled from Debian's sources, -O1 to keep the compile short.
# Exit 77 (skipped) when the machine lacks the cross compiler or qemu-user.
set -e
triple=$1
out=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
[ -n "$out" ] || { echo "usage: $0 TRIPLE|native OUTDIR" >&2; exit 2; }
mkdir -p "$out"
if [ "$triple" = native ]; then
  sh "$root/scripts/static-build.sh" "$out/metrics-agent"
  exit 0
fi
qemu=$(sh "$root/tests/cross/qemu.sh" "$triple")
for tool in "$triple-g++" "$qemu"; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "SKIPPED: $tool is not installed (scripts/deps.sh test installs the cross compilers and qemu-user)"
    exit 77
  }
done
gtest=/usr/src/googletest/googletest
[ -f "$gtest/src/gtest-all.cc" ] || { echo "SKIPPED: $gtest (libgtest-dev) is missing"; exit 77; }

sh "$root/scripts/static-build.sh" "$out/metrics-agent" "$triple"

# Units that run unchanged under qemu-user (the rest drive live sockets,
# threads and timing, which the native suite covers), compiled as one
# translation unit: each file includes the whole header, whose code would
# otherwise be generated once per file.
units="crypto websocket http serialize prometheus collector static_resolver"
unity=$out/units.cpp
for u in $units; do echo "#include \"$root/tests/unit_$u.cpp\""; done > "$unity.new"
if cmp -s "$unity.new" "$unity"; then rm "$unity.new"; else mv "$unity.new" "$unity"; fi
# Newer than OBJ: SRC, or anything it may include from the tree.
stale() {
  [ ! -f "$1" ] && return 0
  for f in "$2" "$root"/metrics_agent.hpp "$root"/platform/*.hpp "$root"/tests/*.hpp; do
    [ "$f" -nt "$1" ] && return 0
  done
  for u in $units; do [ "$root/tests/unit_$u.cpp" -nt "$1" ] && return 0; done
  return 1
}
objs=""
for u in units gtest-all gtest_main; do
  case $u in
    gtest-all|gtest_main) src=$gtest/src/$u.cc; flags="-I$gtest -I$gtest/include" ;;
    *) src=$unity; flags="-I$root -I$out/cross-include -I$gtest/include -Wall -Wextra -Wno-psabi"
       flags="$flags -D_FILE_OFFSET_BITS=64 -D_TIME_BITS=64 -DMETRICS_AGENT_SMALL_NUMBERS"  # as scripts/static-build.sh
       flags="$flags -DMETRICS_AGENT_FIXTURES=\"$root/tests/fixtures\"" ;;
  esac
  obj=$out/$u.o
  if stale "$obj" "$src"; then
    # shellcheck disable=SC2086
    "$triple-g++" -std=c++17 -O1 -pthread $flags -c "$src" -o "$obj"
  fi
  objs="$objs $obj"
done
# shellcheck disable=SC2086
"$triple-g++" -static -pthread $objs -o "$out/unit_tests"
