#!/usr/bin/env python3
"""Writes dashboard/index.html into metrics_agent.hpp's dashboard section.

The page is authored as dashboard/index.html; the header embeds it verbatim
as the raw string R"DASHBOARD(...)DASHBOARD" so that it stays one file to
drop in. Run this after editing the page:

    scripts/gen_dashboard.py           rewrite the header's copy
    scripts/gen_dashboard.py --check   exit 1 when the two differ (a test)
    scripts/gen_dashboard.py --extract write the header's copy to the page

Only the standard library.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = os.path.join(ROOT, "metrics_agent.hpp")
PAGE = os.path.join(ROOT, "dashboard", "index.html")
OPEN, CLOSE = 'R"DASHBOARD(', ')DASHBOARD"'


def split(header):
    start = header.index(OPEN) + len(OPEN)
    end = header.index(CLOSE, start)
    return header[:start], header[start:end], header[end:]


def read(path):
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def write(path, text):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def main(argv):
    header = read(HEADER)
    before, embedded, after = split(header)
    if "--extract" in argv:
        write(PAGE, embedded)
        return 0
    page = read(PAGE)
    if CLOSE in page:
        print("dashboard/index.html contains %s, which would end the raw string" % CLOSE, file=sys.stderr)
        return 1
    if "--check" in argv:
        if page != embedded:
            print("metrics_agent.hpp's dashboard differs from dashboard/index.html: "
                  "run scripts/gen_dashboard.py", file=sys.stderr)
            return 1
        print("the header's dashboard matches dashboard/index.html")
        return 0
    if page != embedded:
        write(HEADER, before + page + after)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
