#!/usr/bin/env python3
"""Writes dashboard/index.html (and dashboard/fleet.html, the /fleet page)
into metrics_agent.hpp's dashboard section.

The page is authored as dashboard/index.html; the header embeds it verbatim
as the raw string R"DASHBOARD(...)DASHBOARD" so that it stays one file to
drop in. Run this after editing the page:

    scripts/gen_dashboard.py           rewrite the header's copy
    scripts/gen_dashboard.py --check   exit 1 when the two differ (a test)
    scripts/gen_dashboard.py --extract write the header's copy to the page

Each page has its own raw string: R"DASHBOARD(...)DASHBOARD" for index.html,
R"FLEET(...)FLEET" for fleet.html.

Only the standard library.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = os.path.join(ROOT, "metrics_agent.hpp")
PAGE = os.path.join(ROOT, "dashboard", "index.html")
OPEN, CLOSE = 'R"DASHBOARD(', ')DASHBOARD"'
# Every embedded page: (file, opening, closing of its raw string).
PAGES = [(PAGE, OPEN, CLOSE),
         (os.path.join(ROOT, "dashboard", "fleet.html"), 'R"FLEET(', ')FLEET"')]


def split(header, OPEN=OPEN, CLOSE=CLOSE):
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
    for page, opening, closing in PAGES:
        status = embed(argv, page, opening, closing)
        if status:
            return status
    return 0


def embed(argv, PAGE, OPEN, CLOSE):
    header = read(HEADER)
    before, embedded, after = split(header, OPEN, CLOSE)
    if "--extract" in argv:
        write(PAGE, embedded)
        return 0
    page = read(PAGE)
    if CLOSE in page:
        print("%s contains %s, which would end the raw string" % (os.path.relpath(PAGE, ROOT), CLOSE), file=sys.stderr)
        return 1
    if "--check" in argv:
        if page != embedded:
            print("metrics_agent.hpp's copy differs from %s: "
                  "run scripts/gen_dashboard.py" % os.path.relpath(PAGE, ROOT), file=sys.stderr)
            return 1
        print("the header's copy matches %s" % os.path.relpath(PAGE, ROOT))
        return 0
    if page != embedded:
        write(HEADER, before + page + after)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
