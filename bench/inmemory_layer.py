"""In-memory channel layer benchmark: Switchboard vs Django Channels 4 in the same run.

Measures (median of --rounds rounds, both layers on the same event loop policy):
  p2p handoff msgs/s  one receiver always waiting in receive(); the sender yields after each
                      send, so every message goes straight to a waiting receiver
  p2p burst msgs/s    the sender sends --burst messages, then the receiver drains them
  group N dlv/s       group_send to N members (100 and 1000), then every member receives its
                      copy; deliveries per second including the receives
  retained KiB        tracemalloc bytes still held after 10 000 channels got one message each,
                      nobody read them and they expired: (a) with no further calls,
                      (b) after one more send, to another channel

Usage: ./scripts/bench inmemory_layer [--quick] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import django
from django.conf import settings

if not settings.configured:  # Channels' layer module reads Django settings on import.
    settings.configure(CHANNEL_LAYERS={}, INSTALLED_APPS=[])
    django.setup()

from channels.layers import InMemoryChannelLayer as ChannelsLayer  # noqa: E402

from switchboard.layers.inmemory import InMemoryChannelLayer as SwitchboardLayer  # noqa: E402

MESSAGE = {"type": "chat.message", "text": "hello world", "username": "bench", "n": 1}
LAYERS: dict[str, Callable[..., Any]] = {"switchboard": SwitchboardLayer, "channels": ChannelsLayer}


async def p2p_handoff(make: Callable[..., Any], count: int) -> float:
    layer = make()
    done = asyncio.Event()

    async def receiver() -> None:
        for _ in range(count):
            await layer.receive("bench.p2p")
        done.set()

    task = asyncio.ensure_future(receiver())
    await asyncio.sleep(0)
    start = time.perf_counter()
    for _ in range(count):
        await layer.send("bench.p2p", MESSAGE)
        await asyncio.sleep(0)
    await asyncio.wait_for(done.wait(), 60)
    elapsed = time.perf_counter() - start
    await task
    return count / elapsed


async def p2p_burst(make: Callable[..., Any], count: int, burst: int) -> float:
    layer = make(capacity=burst)
    start = time.perf_counter()
    for _ in range(count // burst):
        for _ in range(burst):
            await layer.send("bench.burst", MESSAGE)
        for _ in range(burst):
            await layer.receive("bench.burst")
    return (count // burst) * burst / (time.perf_counter() - start)


async def group_fanout(make: Callable[..., Any], members: int, sends: int) -> float:
    layer = make()
    channels = [await layer.new_channel() for _ in range(members)]
    for channel in channels:
        await layer.group_add("bench-room", channel)
    start = time.perf_counter()
    for _ in range(sends):
        await layer.group_send("bench-room", MESSAGE)
        for channel in channels:
            await layer.receive(channel)
    return members * sends / (time.perf_counter() - start)


async def retained(make: Callable[..., Any], channels: int) -> tuple[float, float]:
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    layer = make(expiry=0.05)
    for n in range(channels):
        await layer.send(f"abandoned.{n}", MESSAGE)
    await asyncio.sleep(0.2)  # Well past expiry (and past Switchboard's sweep interval).
    gc.collect()
    idle = tracemalloc.get_traced_memory()[0] - base
    # Only a send: with this short expiry a receive could wait forever for an expired message.
    await layer.send("other.channel", MESSAGE)
    gc.collect()
    touched = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del layer
    return idle / 1024, touched / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a fast run")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    count = 5_000 if args.quick else 50_000
    sends = {100: 20 if args.quick else 200, 1000: 3 if args.quick else 30}
    unread = 10_000

    try:
        import uvloop

        uvloop.install()
        loop_name = "uvloop"
    except ImportError:
        loop_name = "asyncio"

    results: dict[str, dict[str, float]] = {name: {} for name in LAYERS}
    for name, make in LAYERS.items():

        def median(run: Callable[[], Any], make: Callable[..., Any] = make) -> float:
            return statistics.median(asyncio.run(run()) for _ in range(rounds))

        results[name]["p2p handoff msgs/s"] = median(lambda m=make: p2p_handoff(m, count))
        results[name]["p2p burst msgs/s"] = median(lambda m=make: p2p_burst(m, count, 50))
        for members, n in sends.items():
            results[name][f"group {members} dlv/s"] = median(
                lambda m=make, members=members, n=n: group_fanout(m, members, n)
            )
        print(f"  {name}: throughput done, measuring retained memory", file=sys.stderr, flush=True)
        idle, touched = asyncio.run(retained(make, unread))
        results[name]["retained KiB, no calls"] = idle
        results[name]["retained KiB, 1 more send"] = touched

    print(f"In-memory channel layer ({loop_name}, median of {rounds} round(s))")
    print(f"{'metric':30} {'switchboard':>14} {'channels 4':>14} {'ratio':>8}")
    for metric in results["switchboard"]:
        ours, theirs = results["switchboard"][metric], results["channels"][metric]
        if "KiB" in metric:
            # Lower is better: how many times less memory we keep.
            ratio = f"{theirs / ours:7.1f}x" if ours > 1 else "   n/a"
        else:
            ratio = f"{ours / theirs:7.2f}x"
        print(f"{metric:30} {ours:14,.0f} {theirs:14,.0f} {ratio:>8}")
    print("ratio: >1 means Switchboard is faster (throughput) or keeps less (memory)")


if __name__ == "__main__":
    main()
