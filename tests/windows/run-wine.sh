#!/bin/sh
# Runs a Windows program under wine with the fixture's prefix; exits 77
# (skipped) with the reason when wine or the program is missing.
#   tests/windows/run-wine.sh PREFIX PROGRAM [ARGS...]
prefix=$1
shift
if ! command -v wine >/dev/null 2>&1; then
    echo "skipped: no wine binary (Debian package wine)" >&2
    exit 77
fi
if [ ! -e /usr/lib/wine/wine64 ]; then
    echo "skipped: no wine64 binary (Debian package wine64)" >&2
    exit 77
fi
if [ ! -f "$1" ]; then
    echo "skipped: $1 was not built (mingw-w64 missing?)" >&2
    exit 77
fi
WINEPREFIX=$prefix WINEDEBUG=-all exec wine "$@"
