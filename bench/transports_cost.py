"""What a client costs the server on each transport: memory per idle client and CPU per
delivered message, WebSocket, SSE and long-polling side by side, in the same run.

For each transport a fresh ``switchboard serve`` of bench/transports_site.py (IPC layer; a
fresh process each, since memory freed by one transport would be reused by the next) is warmed
up by a few clients of that transport (code loaded on first use is not a client's cost), then:

  memory / idle client   RSS of the server process (psutil, children included) with --clients
                         subscribed, idle clients, minus its RSS with none, divided by
                         --clients; read after --settle s (longer than the server's 5 s
                         keep-alive, so the POST connections of SSE and long-poll clients are
                         closed as a browser's would be); median of 5 readings
  CPU / message          server CPU time (user + system) from the first of --rate x --seconds
                         publications (a publisher process on the same IPC layer) until every
                         client received the last, over the messages delivered

The clients (bench/transport_clients.py, as switchboard.js does) run in their own process,
connected straight to the server. Printed: both figures per transport, the ratios SSE/WS and
poll/WS, and the issue's target (an idle SSE client at most 2x the memory of an idle WebSocket
client). Long-polling's CPU depends on the rate: each message is a request and an answer.

Usage: ./scripts/bench transports_cost [--clients N] [--rate R] [--seconds S]
       [--transports ws,sse,poll]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.transport_servers import Served, client_group, publisher  # noqa: E402

LABELS = {"ws": "WebSocket", "sse": "SSE", "poll": "long-poll"}
WARM_UP = 10  # clients that connect and leave before the baseline


def rss_reading(server: Served) -> int:
    readings = []
    for _ in range(5):
        readings.append(server.rss())
        time.sleep(0.2)
    return int(statistics.median(readings))


def start_group(ctx: Any, kind: str, url: str, count: int) -> tuple[Any, Any, int]:
    here, there = ctx.Pipe()
    group = ctx.Process(target=client_group, args=(kind, url, count, there))
    group.start()
    if not here.poll(300):
        group.terminate()
        raise RuntimeError(f"{kind}: clients did not subscribe within 300 s")
    return group, here, here.recv()[1]


def measure(kind: str, args: argparse.Namespace, ctx: Any, tmp: str) -> dict[str, Any]:
    ipc = os.path.join(tmp, f"ipc-{kind}")
    server = Served("switchboard", ipc_path=ipc)
    url = f"ws://127.0.0.1:{server.port}/ws/"
    group = None
    try:
        warm, conn, _ = start_group(ctx, kind, url, WARM_UP)
        conn.send(("stop",))
        conn.recv()
        warm.join(20)
        time.sleep(args.settle)
        rss0 = rss_reading(server)
        group, conn, subscribed = start_group(ctx, kind, url, args.clients)
        time.sleep(args.settle)
        rss1 = rss_reading(server)
        sockets = server.connections()
        idle0, idle_t0 = server.cpu(), time.monotonic()
        time.sleep(2.0)
        idle_cpu = (server.cpu() - idle0) / (time.monotonic() - idle_t0)

        count = int(args.rate * args.seconds)
        here, there = ctx.Pipe()
        pub = ctx.Process(target=publisher, args=(ipc, args.rate, count, there))
        cpu0, t0 = server.cpu(), time.monotonic()
        pub.start()
        positions, failures, _ = here.recv()
        pub.join(10)
        conn.send(("finish", positions[-1], args.tail))
        results = conn.recv()[1]
        cpu, elapsed = server.cpu() - cpu0, time.monotonic() - t0
        group.join(20)
        group = None
        published = set(positions)
        delivered = sum(len(set(r["delivered"]) & published) for r in results)
        return {
            "subscribed": subscribed,
            "rss0": rss0,
            "rss1": rss1,
            "per_client": (rss1 - rss0) / max(subscribed, 1),
            "idle_cores": idle_cpu,
            "sockets": sockets,
            "published": len(positions),
            "failures": failures,
            "delivered": delivered,
            "expected": len(positions) * len(results),
            "cpu": cpu,
            "cores": cpu / elapsed,
            "cpu_us": cpu / max(delivered, 1) * 1e6,
            "reached": sum(1 for r in results if r["reached_at"] is not None),
            "errors": server.errors(),
        }
    finally:
        if group is not None and group.is_alive():
            group.terminate()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=500, help="idle clients per transport")
    parser.add_argument("--rate", type=float, default=10.0, help="publications per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of publishing")
    parser.add_argument("--settle", type=float, default=6.0, help="seconds before reading RSS")
    parser.add_argument("--tail", type=float, default=30.0)
    parser.add_argument("--transports", default="ws,sse,poll")
    args = parser.parse_args()
    kinds = [k for k in args.transports.split(",") if k]
    ctx = multiprocessing.get_context("spawn")
    tmp = tempfile.mkdtemp(prefix="sb-bench-cost-")
    rows: dict[str, dict[str, Any]] = {}
    try:
        for kind in kinds:
            rows[kind] = r = measure(kind, args, ctx, tmp)
            print(
                f"  {LABELS[kind]:10s} {r['subscribed']} subscribed, RSS {r['rss0'] / 2**20:.1f}"
                f" -> {r['rss1'] / 2**20:.1f} MiB with {r['sockets']} connections open; "
                f"{r['delivered']:,}/{r['expected']:,} delivered",
                flush=True,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(rows, args)


def report(rows: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    print()
    print(
        f"{args.clients} idle clients per transport (own server process each); then "
        f"{int(args.rate * args.seconds)} publications at {args.rate:g}/s to all of them"
    )
    print(
        f"{'':12s}{'KiB/idle client':>16s}{'idle cores':>12s}{'CPU µs/msg':>12s}"
        f"{'server cores':>14s}{'delivered':>11s}"
    )
    for kind, r in rows.items():
        print(
            f"{LABELS[kind]:12s}{r['per_client'] / 1024:16.1f}{r['idle_cores']:12.3f}"
            f"{r['cpu_us']:12.1f}{r['cores']:14.2f}"
            f"{100 * r['delivered'] / max(r['expected'], 1):10.1f}%"
        )
        if r["errors"]:
            print(
                f"    {len(r['errors'])} error/warning line(s) in its log: {r['errors'][0][:150]}"
            )
    if "ws" not in rows:
        return
    ws = rows["ws"]
    print("\nratio to WebSocket (lower is cheaper)")
    print(f"{'':12s}{'memory/client':>15s}{'CPU/msg':>10s}")
    for kind in (k for k in rows if k != "ws"):
        r = rows[kind]
        print(
            f"{LABELS[kind] + '/WS':12s}{r['per_client'] / ws['per_client']:14.2f}x"
            f"{r['cpu_us'] / ws['cpu_us']:9.2f}x"
        )
    if "sse" in rows:
        ratio = rows["sse"]["per_client"] / ws["per_client"]
        met = "MET" if ratio <= 2 else "NOT MET"
        print(
            f"\ntarget (issue 24): an idle SSE client at most 2x the memory of an idle WebSocket "
            f"client: {rows['sse']['per_client'] / 1024:.1f} vs {ws['per_client'] / 1024:.1f} "
            f"KiB = {ratio:.2f}x  {met}"
        )


if __name__ == "__main__":
    main()
