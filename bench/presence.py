"""Presence and recovery benchmark: presence updates/s and the time to recover missed messages.

Measures (median of --rounds rounds):
  presence upd/s   track + untrack of --connections connections in one topic through
                   ``layer.presence_store()``, --concurrency in flight, each broadcasting its
                   diff; in-memory layer and Redis layer (a redis-server started here on a free
                   loopback port, tests/support/redis_servers.py)
  recovery ms      a real ``switchboard serve`` process (tests/realtime/site.py, Redis layer):
                   a client subscribes, leaves, --missed publications are made, and it comes
                   back with its last offset; time from sending ``sub`` to the last replayed
                   ``pub`` frame, over a real WebSocket on loopback

Nearest peers, documented figures (none measured here, none like-for-like):
  * python-socketio has no connection state recovery: its maintainer answered "No, that option
    is not implemented in this server" (Flask-SocketIO discussion #1987, May 2023). Socket.IO's
    Node server has it since 4.6.0 and publishes no timing for it.
  * Centrifugo's published test stand (centrifugal.github.io/centrifugo/misc/benchmark/): 20
    server pods and 5 Redis shards held 1 million connections with a constant churn of 200,000
    connects/disconnects per minute (about 3,300/s, ~170/s per pod) and delivered ~500,000
    messages/s at 200 ms p99. Each connect/disconnect there is at most one presence update per
    channel, so ~3,300 updates/s over 20 pods is the order of magnitude it documents.

Usage: ./scripts/bench presence [--quick] [--rounds N] [--connections N] [--missed N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.support.redis_servers import RedisServer  # noqa: E402

TIMEOUT = 120.0


async def presence_updates(layer: Any, connections: int, concurrency: int) -> float:
    """Updates per second: ``connections`` tracks then as many untracks."""
    store = layer.presence_store()
    limit = asyncio.Semaphore(concurrency)

    async def one(coro: Any) -> None:
        async with limit:
            await coro

    started = time.perf_counter()
    await asyncio.gather(
        *(
            one(store.track("bench", f"r{i}", f"user{i % 100}", {"n": i}))
            for i in range(connections)
        )
    )
    listed = await store.list("bench")
    assert len(listed) == connections, len(listed)
    await asyncio.gather(*(one(store.untrack("bench", f"r{i}")) for i in range(connections)))
    elapsed = time.perf_counter() - started
    return 2 * connections / elapsed


def run_presence(kind: str, url: str | None, args: argparse.Namespace) -> list[float]:
    async def main() -> float:
        if kind == "inmemory":
            from switchboard.layers.inmemory import InMemoryChannelLayer

            layer: Any = InMemoryChannelLayer()
        else:
            from switchboard.layers.redis import RedisChannelLayer

            layer = RedisChannelLayer(hosts=[url])
        try:
            return await asyncio.wait_for(
                presence_updates(layer, args.connections, args.concurrency), TIMEOUT
            )
        finally:
            close = getattr(layer.presence_store(), "close", None)
            if close is not None:
                await close()
            await layer.close()

    return [asyncio.run(main()) for _ in range(args.rounds)]


async def recovery_ms(server_url: str, missed: int) -> float:
    from websockets.asyncio.client import connect

    async def until(ws: Any, predicate: Any) -> dict:
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            if predicate(frame):
                return frame

    async with connect(f"{server_url}?user=writer", max_size=None) as writer:
        async with connect(f"{server_url}?user=reader") as reader:
            await reader.send(json.dumps({"sb": "sub", "topic": "room"}))
            position = await until(reader, lambda f: f.get("sb") == "subscribed")
        # Publications made while the reader is away, pipelined over one socket.
        for i in range(missed):
            await writer.send(json.dumps({"publish": {"n": i, "text": "x" * 64}}))
        for _ in range(missed):
            await until(writer, lambda f: "published" in f)
        async with connect(f"{server_url}?user=reader", max_size=None) as reader:
            frame = {"sb": "sub", "topic": "room", "epoch": position["epoch"]}
            frame["offset"] = position["offset"]
            started = time.perf_counter()
            await reader.send(json.dumps(frame))
            subscribed = await until(reader, lambda f: f.get("sb") == "subscribed")
            assert subscribed.get("recovered") is True, subscribed
            last = position["offset"] + missed
            await until(reader, lambda f: f.get("sb") == "pub" and f["offset"] == last)
            return (time.perf_counter() - started) * 1000


def run_recovery(url: str, args: argparse.Namespace) -> list[float]:
    from tests.realtime.servers import SiteServer

    with tempfile.TemporaryDirectory(prefix="sb-bench-") as tmp:
        server = SiteServer(
            Path(tmp), "bench", RT_REDIS_URL=url, RT_HISTORY_SIZE=str(max(args.missed, 1))
        ).start()
        try:
            return [asyncio.run(recovery_ms(server.url, args.missed)) for _ in range(args.rounds)]
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--missed", type=int, default=1000)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.connections, args.missed = 1, 500, 200
    with RedisServer(name="bench-presence") as redis:
        rows = [
            ("presence upd/s, in-memory", run_presence("inmemory", None, args), "{:,.0f}"),
            ("presence upd/s, Redis", run_presence("redis", redis.url, args), "{:,.0f}"),
        ]
        redis.flushall()
        rows.append(
            (f"recovery of {args.missed} missed, ms", run_recovery(redis.url, args), "{:.1f}")
        )
    print(f"{'measure':<36}{'median':>12}{'best':>12}")
    for name, values, fmt in rows:
        best = max(values) if "upd/s" in name else min(values)
        median = statistics.median(values)
        print(f"{name:<36}{fmt.format(median):>12}{fmt.format(best):>12}")
    print("Peers: see this module's docstring for the documented figures (not measured here).")


if __name__ == "__main__":
    main()
