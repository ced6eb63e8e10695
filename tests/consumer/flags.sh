#!/bin/sh
# The header compiles warning-free with -Wall -Wextra -Wpedantic -Werror under
# each compiler present, in C++17 and C++20. Arg: SOURCE_DIR
set -e
src=$1
found=0
for cxx in g++ clang++; do
  command -v $cxx >/dev/null 2>&1 || continue
  found=1
  for std in c++17 c++20; do
    echo "== $cxx -std=$std"
    $cxx -std=$std -Wall -Wextra -Wpedantic -Werror -fsyntax-only -I"$src" "$src/main.cpp"
    $cxx -std=$std -Wall -Wextra -Wpedantic -Werror -fsyntax-only -I"$src" "$src/examples/embedded.cpp"
    $cxx -std=$std -Wall -Wextra -Wpedantic -Werror -fsyntax-only -I"$src" -DMETRICS_AGENT_NO_DASHBOARD \
      "$src/examples/embedded.cpp"
  done
done
[ $found = 1 ] || { echo "no C++ compiler found"; exit 1; }
echo "header is warning-free in every configuration"
