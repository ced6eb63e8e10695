#!/bin/sh
# Builds for Windows x64 with Debian's mingw-w64 (posix thread model).
#   scripts/build-windows.sh agent OUTDIR   OUTDIR/metrics-agent.exe, static and stripped
#   scripts/build-windows.sh units OUTDIR   OUTDIR/unit_tests.exe: the unit tests that
#                                           need no /proc, no POSIX call and no file
#                                           (WebSocket codec, HTTP parser, crypto), with
#                                           GoogleTest built from the googletest
#                                           package's sources
# Exits 77 (a skip for ctest) when the compiler or the sources are missing.
set -eu
what=$1
out=$2
root=$(cd "$(dirname "$0")/.." && pwd)
cxx=x86_64-w64-mingw32-g++-posix
if ! command -v $cxx >/dev/null 2>&1; then
    echo "skipped: $cxx not found (Debian package g++-mingw-w64-x86-64-posix)" >&2
    exit 77
fi
mkdir -p "$out/include"
# picojson is header-only; the cross compiler must not see the rest of /usr/include.
ln -sf /usr/include/picojson.h "$out/include/picojson.h"
flags="-std=c++17 -Wall -Wextra -I$root -I$out/include"
libs="-static -lws2_32 -liphlpapi -lpsapi -lbcrypt"

case $what in
agent)
    $cxx $flags -O2 "$root/main.cpp" -o "$out/metrics-agent.exe" $libs
    x86_64-w64-mingw32-strip "$out/metrics-agent.exe"
    ;;
units)
    gtest=/usr/src/googletest/googletest
    if [ ! -f $gtest/src/gtest-all.cc ]; then
        echo "skipped: $gtest not found (Debian package googletest)" >&2
        exit 77
    fi
    # The three unit files as one translation unit (each includes the whole
    # header); each object in the background, two at a time.
    unity="$out/units.cpp"
    for u in crypto http websocket; do echo "#include \"$root/tests/unit_$u.cpp\""; done > "$unity.new"
    if cmp -s "$unity.new" "$unity"; then rm "$unity.new"; else mv "$unity.new" "$unity"; fi
    objs=""
    pids=""
    n=0
    for src in $gtest/src/gtest-all.cc $gtest/src/gtest_main.cc "$unity"; do
        obj=$(basename "$src")
        obj="$out/${obj%.*}.o"
        objs="$objs $obj"
        if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ "$root/metrics_agent.hpp" -nt "$obj" ] \
            || [ "$root/tests/unit_crypto.cpp" -nt "$obj" ] || [ "$root/tests/unit_http.cpp" -nt "$obj" ] \
            || [ "$root/tests/unit_websocket.cpp" -nt "$obj" ] || [ "$root/platform/windows.hpp" -nt "$obj" ]; then
            $cxx $flags -O1 -I$gtest -I$gtest/include -DMETRICS_AGENT_FIXTURES="\"$root/tests/fixtures\"" \
                -c "$src" -o "$obj" &
            pids="$pids $!"
            n=$((n + 1))
            if [ $n -ge 2 ]; then
                for p in $pids; do wait "$p"; done
                pids=""
                n=0
            fi
        fi
    done
    for p in $pids; do wait "$p"; done
    # shellcheck disable=SC2086
    $cxx -o "$out/unit_tests.exe" $objs $libs
    ;;
*)
    echo "usage: $0 agent|units OUTDIR" >&2
    exit 2
    ;;
esac
