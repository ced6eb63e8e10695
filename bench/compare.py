#!/usr/bin/python3
"""The agent against a floor, in one run: for each client count, each server
in turn (alternating, round after round) is started by bench/run.sh and held
by load_client for the same window; then the medians of the rounds and the
ratios of the agent to each other server, from the same rounds.

    bench/run.sh compare                         # 1,000, 10,000 and 19,500 clients, 3 rounds of 30 s
    bench/run.sh compare --counts 1000 --rounds 1 --seconds 10
    bench/run.sh compare --servers agent,agent1,floor1,floorK

Servers: agent (the agent as built, --fanout-threads automatic), agent1 (the
agent with --fanout-threads 1), agentS (the agent with --fanout-io-uring off:
one send() per client), floor1 and floorK (bench/floor_server with 1
thread and with one per core), floor1U and floorKU (the same with their sends
submitted through io_uring, one batch per 1,024 clients). Above 5,000 clients load_client spreads its
connections over 4 source addresses in 127.0.0.0/8.

Peers: beast and wspp (bench/peers/beast_server.cpp and websocketpp_server.cpp,
Boost.Beast and websocketpp on one thread each), bench-only, built by make
bench when Debian's libboost1.81-dev and libwebsocketpp-dev are installed.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def servers(build, names):
    k = os.cpu_count() or 1
    table = {
        "agent": (os.path.join(build, "metrics-agent"), ""),
        "agent1": (os.path.join(build, "metrics-agent"), "--fanout-threads 1"),
        "agentS": (os.path.join(build, "metrics-agent"), "--fanout-io-uring off"),
        "floor1": (os.path.join(build, "floor_server"), "--threads 1"),
        "floorK": (os.path.join(build, "floor_server"), "--threads %d" % k),
        "floor1U": (os.path.join(build, "floor_server"), "--threads 1 --io-uring"),
        "floorKU": (os.path.join(build, "floor_server"), "--threads %d --io-uring" % k),
        "beast": (os.path.join(build, "beast_server"), ""),
        "wspp": (os.path.join(build, "websocketpp_server"), ""),
    }
    for n in names:
        if n not in table:
            sys.exit("compare: unknown server %r (%s)" % (n, ", ".join(table)))
    return [(n,) + table[n] for n in names]


def run_one(binary, args, clients, seconds, build):
    env = dict(os.environ, AGENT=binary, AGENT_ARGS=args,
               LOAD_CLIENT=os.path.join(build, "load_client"))
    extra = ["--source-ips", "4"] if clients > 5000 else []
    out = subprocess.run(["sh", os.path.join(ROOT, "bench", "run.sh"), str(clients), str(seconds), "--json"] + extra,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if not lines:
        sys.stderr.write(out.stderr)
        return None
    j = json.loads(lines[-1])
    return {
        "delivery": j["delivery_percent"],
        "p50": j["delay_ms"]["p50"],
        "p99": j["delay_ms"]["p99"],
        "cpu": j["agent"]["cpu_percent"],
        "rss": (j["agent"]["rss_kib"] or 0) / 1024.0,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", type=int, nargs="+", default=[1000, 10000, 19500])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--servers", default="agent,floor1,floorK")
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "cmake"))
    ap.add_argument("--json", help="also write every measurement to this file")
    o = ap.parse_args()
    srv = servers(o.build, o.servers.split(","))
    results = {}
    for clients in o.counts:
        for r in range(o.rounds):
            for name, binary, args in srv:
                m = run_one(binary, args, clients, o.seconds, o.build)
                results.setdefault((clients, name), []).append(m)
                print("%6d clients  round %d  %-7s %s" % (clients, r + 1, name,
                      "failed" if m is None else
                      "delivered %.2f%%  p50 %.1f  p99 %.1f ms  cpu %.1f%%  rss %.1f MiB"
                      % (m["delivery"], m["p50"], m["p99"], m["cpu"], m["rss"])), flush=True)
    print()
    print("medians of %d rounds, %d s windows" % (o.rounds, o.seconds))
    print("| server | " + " | ".join("%d clients: p99 ms / CPU %% / RSS MiB / delivered %%" % c for c in o.counts) + " |")
    print("|---" * (len(o.counts) + 1) + "|")
    med = {}
    for name, _, _ in srv:
        cells = []
        for c in o.counts:
            ms = [m for m in results[(c, name)] if m]
            if not ms:
                cells.append("failed")
                continue
            d = {k: statistics.median(m[k] for m in ms) for k in ("p99", "cpu", "rss", "delivery")}
            d["min_delivery"] = min(m["delivery"] for m in ms)
            med[(c, name)] = d
            cells.append("%.1f / %.1f / %.1f / %.2f" % (d["p99"], d["cpu"], d["rss"], d["min_delivery"]))
        print("| %s | %s |" % (name, " | ".join(cells)))
    print()
    print("ratios, agent to each (medians of the per-round ratios: p99, CPU)")
    for name, _, _ in srv:
        if name == "agent":
            continue
        cells = []
        for c in o.counts:
            pairs = [(a, b) for a, b in zip(results.get((c, "agent"), []), results[(c, name)]) if a and b]
            if not pairs:
                cells.append("n/a")
                continue
            p99s = [a["p99"] / b["p99"] for a, b in pairs if b["p99"] > 0]
            cpus = [a["cpu"] / b["cpu"] for a, b in pairs if b["cpu"] > 0]
            # A server idle enough to read 0 in every round has no ratio.
            cells.append("%d: %s / %s" % (c, "%.2fx" % statistics.median(p99s) if p99s else "n/a",
                                           "%.2fx" % statistics.median(cpus) if cpus else "n/a"))
        print("agent / %-7s %s" % (name, "   ".join(cells)))
    if o.json:
        with open(o.json, "w") as f:
            json.dump({"%d %s" % k: v for k, v in results.items()}, f, indent=1)


if __name__ == "__main__":
    main()
