#!/bin/sh
# Builds the static, size-trimmed metrics-agent: the one place that holds the
# release flags (make static, make cross, make dist and the tests all use it).
#   sh scripts/static-build.sh OUT [TRIPLE]
# TRIPLE is a Debian cross toolchain prefix (aarch64-linux-gnu, ...); none
# builds for this machine. Writes OUT (stripped), OUT.full (with symbols) and
# OUT.map (the linker map: what every object and library contributes).
# Fails when the compiler or linker prints anything (a warning, such as
# glibc's about getaddrinfo in static binaries), or when the binary links a
# resolver that would need NSS at run time.
set -e
out=$1
triple=$2
root=$(cd "$(dirname "$0")/.." && pwd)
[ -n "$out" ] || { echo "usage: $0 OUT [TRIPLE]" >&2; exit 2; }
cxx=${CXX:-g++}
strip=strip
nm=nm
inc=""
if [ -n "$triple" ]; then
  cxx=$triple-g++
  strip=$triple-strip
  nm=$triple-nm
  # A cross compiler does not search /usr/include; give it picojson alone.
  inc="$(dirname "$out")/cross-include"
  mkdir -p "$inc"
  ln -sf /usr/include/picojson.h "$inc/picojson.h"
  inc="-I$inc"
fi
mkdir -p "$(dirname "$out")"
log=$out.log
# -Os and section GC: see "Static binaries" in README.md for what each saves.
# -Wno-psabi: GCC's note that armhf's parameter passing changed in GCC 7.1.
# 64-bit file offsets and time on 32-bit targets (armhf): without them stat()
# and readdir() fail with EOVERFLOW on large inode numbers, and time_t ends in 2038.
# shellcheck disable=SC2086
if ! $cxx -std=c++17 -Os -Wall -Wextra -Wno-psabi -ffunction-sections -fdata-sections \
    -D_FILE_OFFSET_BITS=64 -D_TIME_BITS=64 \
    -DMETRICS_AGENT_NO_IOSTREAM -DMETRICS_AGENT_NO_GETADDRINFO -DMETRICS_AGENT_SMALL_NUMBERS \
    -I"$root" $inc "$root/main.cpp" -o "$out.full" \
    -static -pthread -Wl,--gc-sections -Wl,-Map,"$out.map" \
    -Wl,--whole-archive -lpthread -Wl,--no-whole-archive >"$log" 2>&1; then
  cat "$log" >&2
  echo "static build failed${triple:+ for $triple}" >&2
  exit 1
fi
if [ -s "$log" ]; then
  cat "$log" >&2
  echo "the static build${triple:+ for $triple} printed warnings (above)" >&2
  exit 1
fi
if $nm "$out.full" | grep -E ' (getaddrinfo|gethostbyname[0-9a-z_]*|__nss_[a-z_]*lookup[0-9]*)$' >&2; then
  echo "the static binary links the NSS resolver (above): it must not" >&2
  exit 1
fi
$strip -o "$out" "$out.full"
