#!/bin/sh
# Fixture for the Windows tests: metrics-agent.exe and unit_tests.exe built with
# mingw-w64, and a wine prefix made once in the build directory (a fresh one
# takes several seconds; every wine test then shares it).
#   tests/windows/setup.sh OUTDIR
# Exits 77 (skipped) when mingw-w64 is missing; without wine it only builds.
set -eu
out=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
sh "$root/scripts/build-windows.sh" agent "$out"
sh "$root/scripts/build-windows.sh" units "$out"
ls -l "$out/metrics-agent.exe" | awk '{print "metrics-agent.exe: " $5 " bytes"}'
if ! command -v wine >/dev/null 2>&1; then
    echo "no wine: the Windows binaries are built, not run (Debian package wine)"
    exit 0
fi
if [ ! -f "$out/wineprefix/system.reg" ]; then
    start=$(date +%s%N)
    # Without Mono and Gecko: nothing here needs them, and their installers
    # would otherwise ask for a download.
    WINEPREFIX="$out/wineprefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" \
        wineboot --init >/dev/null 2>&1
    WINEPREFIX="$out/wineprefix" wineserver --wait
    echo "wine prefix made in $((($(date +%s%N) - start) / 1000000)) ms"
fi
