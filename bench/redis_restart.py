"""What a Redis crash costs: acknowledged sends lost, per layer, in the same run.

Two OS processes per layer: one reads a consumer channel (``new_channel()``), the other sends
to it every --interval seconds. After --kill-at seconds the redis-server (started here on a free
loopback port, without persistence) is killed with SIGKILL, and restarted --down seconds later,
empty; the sender goes on until --duration. A send that raised is refused (the sender knows);
one that returned is acknowledged and must arrive. Printed per layer: sends acknowledged and
refused, acknowledged sends lost, duplicates, and how long after the restart the first
acknowledged send was delivered. Switchboard against channels_redis (core and pubsub).

Usage: ./scripts/bench redis_restart [--only switchboard,core,pubsub] [--duration S]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.redis_layer import LABELS, LAYERS, make_layer  # noqa: E402
from tests.support.redis_servers import RedisServer  # noqa: E402

QUIET = 2.0  # seconds without a message after the sender stopped: the receiver is done


def _receiver(kind: str, url: str, names: Any, results: Any, sender_done: Any) -> None:
    async def run() -> list[tuple[int, float]]:
        layer = make_layer(kind, url)
        channel = await layer.new_channel()
        names.put(channel)
        got: list[tuple[int, float]] = []
        while True:
            try:
                message = await asyncio.wait_for(layer.receive(channel), QUIET)
            except TimeoutError:
                if sender_done.is_set():
                    break
                continue
            except Exception:  # noqa: BLE001 - the layer's own reconnecting; keep reading
                await asyncio.sleep(0.05)
                continue
            got.append((message["n"], time.time()))
        return got

    results.put(("received", asyncio.run(run())))


def _sender(kind: str, url: str, channel: str, args: Any, results: Any) -> None:
    async def run() -> tuple[list[tuple[int, float]], int]:
        layer = make_layer(kind, url)
        acked: list[tuple[int, float]] = []
        refused = 0
        n = 0
        end = time.monotonic() + args.duration
        while time.monotonic() < end:
            try:
                await asyncio.wait_for(layer.send(channel, {"type": "tick", "n": n}), 5)
                acked.append((n, time.time()))
            except Exception:  # noqa: BLE001 - refused: the sender was told
                refused += 1
            n += 1
            await asyncio.sleep(args.interval)
        return acked, refused

    results.put(("sent", asyncio.run(run())))


def measure(kind: str, redis: RedisServer, args: argparse.Namespace) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    names, results, sender_done = ctx.Queue(), ctx.Queue(), ctx.Event()
    receiver = ctx.Process(target=_receiver, args=(kind, redis.url, names, results, sender_done))
    receiver.start()
    channel = names.get(timeout=30)
    sender = ctx.Process(target=_sender, args=(kind, redis.url, channel, args, results))
    started = time.time()
    sender.start()
    time.sleep(args.kill_at)
    redis.kill()
    time.sleep(args.down)
    redis.start()
    restarted = time.time()
    collected: dict[str, Any] = {}
    collected.update([results.get(timeout=args.duration + 60)])
    sender_done.set()
    collected.update([results.get(timeout=60)])
    sender.join(10)
    receiver.join(10)
    acked, refused = collected["sent"]
    received = collected["received"]
    acked_ns = {n for n, _ in acked}
    received_ns = [n for n, _ in received]
    after = [t for n, t in received if t >= restarted]
    return {
        "acknowledged": len(acked),
        "refused": refused,
        "lost": len(acked_ns - set(received_ns)),
        "duplicates": len(received_ns) - len(set(received_ns)),
        "first": (min(after) - restarted) if after else float("nan"),
        "wall": time.time() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(LAYERS))
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--interval", type=float, default=0.002)
    parser.add_argument("--kill-at", type=float, default=1.0)
    parser.add_argument("--down", type=float, default=0.5)
    args = parser.parse_args()
    kinds = [k for k in args.only.split(",") if k]
    rows = []
    for kind in kinds:
        with RedisServer(name=f"bench-restart-{kind}") as redis:
            rows.append((kind, measure(kind, redis, args)))
    print(
        f"Redis killed (SIGKILL) {args.kill_at}s into {args.duration}s of sends every "
        f"{args.interval * 1000:g} ms, restarted empty {args.down}s later"
    )
    header = ("layer", "acknowledged", "refused", "ack. lost", "duplicates", "1st after restart")
    print(" | ".join(f"{h:>22}" if i == 0 else f"{h:>17}" for i, h in enumerate(header)))
    for kind, r in rows:
        cells = [
            f"{LABELS[kind]:>22}",
            f"{r['acknowledged']:>17}",
            f"{r['refused']:>17}",
            f"{r['lost']:>17}",
            f"{r['duplicates']:>17}",
            f"{r['first']:>16.2f}s",
        ]
        print(" | ".join(cells))


if __name__ == "__main__":
    main()
