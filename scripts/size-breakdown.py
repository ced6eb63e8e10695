#!/usr/bin/env python3
"""What the bytes of a static binary are: per library and per object file,
from the linker map that scripts/static-build.sh writes beside it (OUT.map).

    /usr/bin/python3 scripts/size-breakdown.py build/metrics-agent-static.map [TOP]

Counts the input sections the linker kept in the loaded image (code, data,
unwind tables), before stripping; symbols and debug sections are not counted.
Only the standard library.
"""

import collections
import re
import sys

SECTION = re.compile(r"^ (\.\S+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S+)")
NAME_ONLY = re.compile(r"^ (\.\S+)$")
CONTINUED = re.compile(r"^\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S+)")


def contributions(path):
    per_object = collections.Counter()
    pending = None
    in_memory_map = False
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("Linker script and memory map"):
                in_memory_map = True
                continue
            if not in_memory_map:
                continue
            if line.startswith((".debug", ".comment", ".gnu.attributes", ".ARM.attributes", ".riscv.attributes")):
                break
            m = SECTION.match(line)
            if m:
                size, obj = int(m.group(2), 16), m.group(3)
                pending = None
            else:
                if NAME_ONLY.match(line):
                    pending = True
                    continue
                m = CONTINUED.match(line) if pending else None
                pending = None
                if not m:
                    continue
                size, obj = int(m.group(1), 16), m.group(2)
            if size:
                per_object[obj.split("/")[-1]] += size
    return per_object


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    top = int(argv[2]) if len(argv) > 2 else 25
    per_object = contributions(argv[1])
    per_library = collections.Counter()
    for obj, size in per_object.items():
        lib = re.sub(r"\(.*\)$", "", obj)
        per_library["the agent (main.cpp)" if lib.endswith(".o") and not lib.startswith("crt") else lib] += size
    total = sum(per_object.values())
    print("%9s  %5s  %s" % ("bytes", "share", "library"))
    for lib, size in per_library.most_common():
        print("%9d  %4.1f%%  %s" % (size, 100.0 * size / total, lib))
    print("%9d         total\n" % total)
    print("%9s  %5s  %s" % ("bytes", "share", "object"))
    for obj, size in per_object.most_common(top):
        print("%9d  %4.1f%%  %s" % (size, 100.0 * size / total, obj))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
