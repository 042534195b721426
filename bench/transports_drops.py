"""Delivery through a network that drops every connection: WebSocket, SSE and long-polling
sessions of Switchboard side by side, python-socketio beside them, in the same run.

A real ``switchboard serve`` of bench/transports_site.py (IPC layer) sits behind
tests/support/tcp_proxy.py, which cuts every connection and refuses new ones for --cut-for s
every --cut-every s (default 2 s every 5 s). A publisher process (not behind the proxy, on the
same IPC layer) makes --rate reliable publications per second on one topic for --seconds s
through ``switchboard.realtime.history.publish``. --clients clients per transport
(bench/transport_clients.py: what switchboard.js does; a drop -> reconnect after 0.5-2 s and
subscribe again with the last epoch/offset) each in its own process. After the last
publication every client has up to --tail s to receive it (the proxy goes on cutting).

The peer: a python-socketio ``AsyncServer`` on uvicorn behind its own proxy cutting the same
way, emitting --rate events per second to a room for --seconds s; ``socketio.AsyncClient``
clients with its default reconnection (bench/socketio_peer.py). It has no recovery: whatever
is emitted while a client is away is lost, so it is expected below 100%.

Printed per transport: clients subscribed, delivered % (distinct publications received over
published x clients), in order (no unannounced gap, offsets increasing), duplicates left after
de-duplication by offset and raw duplicates before it, resyncs, sessions per client, and the
time after the last publication until every client had it; then server CPU per delivered
message (psutil, the server process and its children) for Switchboard (all transports together)
and Socket.IO.

Usage: ./scripts/bench transports_drops [--seconds S] [--clients N] [--rate R]
       [--transports ws,sse,poll] [--no-peer] [--cut-every S --cut-for S] [--tail S]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.transport_servers import (  # noqa: E402
    Served,
    client_group,
    publisher,
    start_proxy,
    stop_proxy,
)

LABELS = {"ws": "WebSocket", "sse": "SSE", "poll": "long-poll", "socketio": "python-socketio"}


def increasing(values: list[Any]) -> bool:
    return all(a < b for a, b in zip(values, values[1:], strict=False))


def summarize_switchboard(results: list[dict[str, Any]], published: set) -> dict[str, Any]:
    n = len(results)
    got = sum(len(set(r["delivered"]) & published) for r in results)
    in_order = all(r["gaps"] == 0 and increasing(r["delivered"]) for r in results)
    reached = [r["reached_at"] for r in results if r["reached_at"] is not None]
    errors: dict[str, int] = {}
    for r in results:
        for kind, count in r["errors"].items():
            errors[kind] = errors.get(kind, 0) + count
    return {
        "clients": n,
        "delivered": 100.0 * got / max(n * len(published), 1),
        "count": got,
        "in_order": in_order,
        "gaps": sum(r["gaps"] for r in results),
        "dups_after": sum(len(r["delivered"]) - len(set(r["delivered"])) for r in results),
        "dups_raw": sum(r["raw_duplicates"] for r in results),
        "resyncs": sum(r["resyncs"] for r in results),
        "sessions": sum(r["sessions"] for r in results) / max(n, 1),
        "reached": len(reached),
        "tail": max(reached) if reached else float("nan"),
        "errors": errors,
    }


def summarize_peer(results: list[dict[str, Any]], emitted: int) -> dict[str, Any]:
    n = len(results)
    got = sum(len(set(r["seen"]) & set(range(emitted))) for r in results)
    return {
        "clients": n,
        "delivered": 100.0 * got / max(n * emitted, 1),
        "count": got,
        "in_order": all(increasing(r["seen"]) for r in results),
        "gaps": None,
        "dups_after": 0,
        "dups_raw": sum(len(r["seen"]) - len(set(r["seen"])) for r in results),
        "resyncs": None,
        "sessions": sum(r["connects"] for r in results) / max(n, 1),
        "reached": sum(1 for r in results if r["seen"] and max(r["seen"]) >= emitted - 1),
        "tail": None,
        "errors": {},
    }


def http_json(url: str, method: str = "GET") -> dict[str, Any]:
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as r:
        return json.loads(r.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of publishing")
    parser.add_argument("--clients", type=int, default=100, help="clients per transport")
    parser.add_argument("--rate", type=float, default=20.0, help="publications per second")
    parser.add_argument("--transports", default="ws,sse,poll")
    parser.add_argument("--no-peer", action="store_true", help="without python-socketio")
    parser.add_argument("--cut-every", type=float, default=5.0)
    parser.add_argument("--cut-for", type=float, default=2.0)
    parser.add_argument("--tail", type=float, default=30.0, help="seconds to wait for the last")
    parser.add_argument("--dump", help="write every client's tally (JSON) to this file")
    args = parser.parse_args()
    kinds = [k for k in args.transports.split(",") if k]
    count = int(args.rate * args.seconds)
    ctx = multiprocessing.get_context("spawn")
    tmp = tempfile.mkdtemp(prefix="sb-bench-drops-")
    servers: list[Served] = []
    proxies: list[Any] = []
    groups: dict[str, tuple[Any, Any]] = {}
    try:
        server = Served("switchboard", ipc_path=os.path.join(tmp, "ipc"))
        servers.append(server)
        proc, port = start_proxy(server.port, args.cut_every, args.cut_for)
        proxies.append(proc)
        urls = {kind: f"ws://127.0.0.1:{port}/ws/" for kind in kinds}
        if not args.no_peer:
            peer = Served("socketio")
            servers.append(peer)
            proc, peer_port = start_proxy(peer.port, args.cut_every, args.cut_for)
            proxies.append(proc)
            urls["socketio"] = f"http://127.0.0.1:{peer_port}"
        for kind, url in urls.items():
            here, there = ctx.Pipe()
            group = ctx.Process(target=client_group, args=(kind, url, args.clients, there))
            group.start()
            groups[kind] = (group, here)
        for kind, (_, conn) in groups.items():
            if not conn.poll(240):
                raise RuntimeError(f"{kind} clients did not subscribe")
            _, ready = conn.recv()
            print(f"  {LABELS[kind]:16s} {ready}/{args.clients} clients subscribed", flush=True)

        cpu0 = {s.kind: s.cpu() for s in servers}
        here, there = ctx.Pipe()
        pub = ctx.Process(
            target=publisher, args=(os.path.join(tmp, "ipc"), args.rate, count, there)
        )
        pub.start()
        if not args.no_peer:
            http_json(f"http://127.0.0.1:{peer.port}/start?count={count}&rate={args.rate}", "POST")
        print(f"  publishing {count} at {args.rate:g}/s…", flush=True)
        positions, failures, elapsed = here.recv()
        pub.join(10)
        while not args.no_peer and not http_json(f"http://127.0.0.1:{peer.port}/status")["done"]:
            time.sleep(0.2)
        published = set(positions)
        for kind, (_, conn) in groups.items():
            if kind == "socketio":
                conn.send(("finish", count - 1, min(args.tail, 5.0)))
            else:
                conn.send(("finish", positions[-1], args.tail))
        results = {kind: conn.recv()[1] for kind, (_, conn) in groups.items()}
        cpu = {s.kind: s.cpu() - cpu0[s.kind] for s in servers}
    finally:
        for group, _ in groups.values():
            group.join(20)
            if group.is_alive():
                group.terminate()
        for proc in proxies:
            stop_proxy(proc)
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if args.dump:
        with open(args.dump, "w") as f:
            json.dump(results, f)
    rows = {
        kind: summarize_peer(rs, count)
        if kind == "socketio"
        else summarize_switchboard(rs, published)
        for kind, rs in results.items()
    }
    report(rows, cpu, servers, args, len(positions), failures, elapsed)


def report(rows, cpu, servers, args, published: int, failures: int, elapsed: float) -> None:
    print()
    cuts = "no cuts"
    if args.cut_every:
        cuts = f"every connection cut for {args.cut_for:g}s every {args.cut_every:g}s"
    print(
        f"{args.clients} clients per transport, {published} publications at {args.rate:g}/s "
        f"({elapsed:.1f}s, {failures} refused), {cuts}"
    )
    head = f"{'':17s}{'delivered':>10s}{'in order':>10s}{'dups':>6s}{'raw dups':>10s}"
    print(head + f"{'resyncs':>9s}{'sessions':>10s}{'got last':>10s}{'tail s':>8s}")
    for kind, r in rows.items():
        order = "yes" if r["in_order"] else f"NO ({r['gaps']} gaps)"
        resyncs = "-" if r["resyncs"] is None else str(r["resyncs"])
        tail = "-" if r["tail"] is None else f"{r['tail']:.1f}"
        print(
            f"{LABELS[kind]:17s}{r['delivered']:9.2f}%{order:>10s}{r['dups_after']:6d}"
            f"{r['dups_raw']:10d}{resyncs:>9s}{r['sessions']:10.1f}"
            f"{str(r['reached']) + '/' + str(r['clients']):>10s}{tail:>8s}"
        )
    print("(sessions: per client, the first included; for Socket.IO its connects)")
    for kind, r in rows.items():
        if r["errors"]:
            ends = ", ".join(
                f"{k} {v}" for k, v in sorted(r["errors"].items(), key=lambda x: -x[1])
            )
            print(f"  {LABELS[kind]} sessions ended by: {ends}")
    print("\nserver CPU (psutil user+system, the whole run incl. reconnects and the tail)")
    sb = sum(r["count"] for k, r in rows.items() if k != "socketio")
    per = {"switchboard": sb, "socketio": rows.get("socketio", {}).get("count", 0)}
    for s in servers:
        n = per[s.kind]
        print(
            f"  {s.kind:12s} {cpu[s.kind]:6.2f} s for {n:,} delivered = "
            f"{cpu[s.kind] / max(n, 1) * 1e6:6.1f} µs/message"
        )
        bad = s.errors()
        if bad:
            print(f"    {len(bad)} error/warning line(s) in its log, e.g. {bad[0][:150]}")


if __name__ == "__main__":
    main()
