#!/bin/sh
# Runs cross-built unit tests under qemu-user; 77 (skipped) when they or qemu are missing.
#   sh tests/cross/run-unit.sh QEMU UNIT_TESTS
command -v "$1" >/dev/null 2>&1 || { echo "SKIPPED: $1 is not installed (qemu-user)"; exit 77; }
[ -x "$2" ] || { echo "SKIPPED: $2 was not built (see build_cross_*)"; exit 77; }
exec "$1" "$2" --gtest_brief=1
