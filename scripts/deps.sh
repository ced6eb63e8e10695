#!/bin/sh
# Checks for the Debian packages a make target needs; installs the missing ones
# when run as root, otherwise says exactly what to install.
#   scripts/deps.sh build   - the agent itself (a compiler and picojson-dev)
#   scripts/deps.sh test    - everything the test suite uses
#   scripts/deps.sh cross   - cross compilers and qemu-user for `make cross` and
#                             `make dist` (the test suite runs them too)
#   scripts/deps.sh fuzz    - clang and its sanitizer/libFuzzer runtimes (`make fuzz`;
#                             `test` needs them too for the fuzz and sanitizer flavors)
#   scripts/deps.sh windows - mingw-w64 for `make windows`
#   scripts/deps.sh bench   - Boost and websocketpp headers for the bench-only peers
#                             (bench/peers/, built by `make bench`)
set -e
want=build
[ -n "$1" ] && want=$1

missing=""
need() {  # need PACKAGE FILE: PACKAGE is missing when FILE does not exist
  [ -e "$2" ] || missing="$missing $1"
}
need picojson-dev /usr/include/picojson.h
command -v c++ >/dev/null 2>&1 || missing="$missing g++"
if [ "$want" = test ]; then
  command -v cmake >/dev/null 2>&1 || missing="$missing cmake"
  need libgtest-dev /usr/include/gtest/gtest.h
  need libcpp-httplib-dev /usr/include/httplib.h
  need python3-websockets /usr/lib/python3/dist-packages/websockets
  need python3-psutil /usr/lib/python3/dist-packages/psutil
  need python3-msgpack /usr/lib/python3/dist-packages/msgpack
  need python3-pytest /usr/lib/python3/dist-packages/pytest
  need python3-selenium /usr/lib/python3/dist-packages/selenium
  need chromium /usr/bin/chromium
  need chromium-driver /usr/bin/chromedriver
  need prometheus /usr/bin/prometheus
  need prometheus-node-exporter /usr/bin/prometheus-node-exporter
  need fuse3 /usr/bin/fusermount3
  need python3-fusepy /usr/lib/python3/dist-packages/fusepy.py
  # Windows: the .exe and its unit tests built with mingw-w64, run under wine.
  command -v x86_64-w64-mingw32-g++-posix >/dev/null 2>&1 || missing="$missing g++-mingw-w64-x86-64-posix"
  need googletest /usr/src/googletest/googletest/src/gtest-all.cc
  command -v wine >/dev/null 2>&1 || missing="$missing wine"
  [ -e /usr/lib/wine/wine64 ] || missing="$missing wine64"
fi
if [ "$want" = bench ]; then
  need libboost1.81-dev /usr/include/boost/beast.hpp
  need libwebsocketpp-dev /usr/include/websocketpp/server.hpp
fi
if [ "$want" = windows ]; then
  command -v x86_64-w64-mingw32-g++-posix >/dev/null 2>&1 || missing="$missing g++-mingw-w64-x86-64-posix"
fi
if [ "$want" = test ] || [ "$want" = fuzz ]; then
  command -v clang++ >/dev/null 2>&1 || missing="$missing clang"
  ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1 ||
    missing="$missing libclang-rt-14-dev"
fi
if [ "$want" = cross ] || [ "$want" = test ]; then
  command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 || missing="$missing g++-aarch64-linux-gnu"
  command -v arm-linux-gnueabihf-g++ >/dev/null 2>&1 || missing="$missing g++-arm-linux-gnueabihf"
  command -v riscv64-linux-gnu-g++ >/dev/null 2>&1 || missing="$missing g++-riscv64-linux-gnu"
  command -v qemu-aarch64 >/dev/null 2>&1 || missing="$missing qemu-user"
fi
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || true
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >&2
else
  echo "missing Debian packages:$missing" >&2
  echo "install them with: sudo apt-get install$missing" >&2
  exit 1
fi
