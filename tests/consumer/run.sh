#!/bin/sh
# Builds the consumer project both ways: add_subdirectory() of the source
# tree, and find_package() against an installed copy. Args: SOURCE_DIR WORK_DIR
set -e
src=$1
work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
mkdir -p "$work"
echo "== add_subdirectory"
cmake -S "$here" -B "$work/sub" -DMODE=subdirectory -DMETRICS_AGENT_SOURCE="$src" >/dev/null
cmake --build "$work/sub" >/dev/null
"$work/sub/consumer"
echo "== install + find_package"
cmake -S "$src" -B "$work/lib" -DCMAKE_INSTALL_PREFIX="$work/prefix" -DMETRICS_AGENT_INSTALL_ONLY=ON >/dev/null
cmake --install "$work/lib" >/dev/null
cmake -S "$here" -B "$work/pkg" -DMODE=package -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/pkg" >/dev/null
"$work/pkg/consumer"
echo "consumer builds both ways"
