"""One group_send to many members in one process: Switchboard's in-memory layer vs Channels 4's.

Each layer gets --members channels (``new_channel()``), all added to one group, and one task
per channel waiting in ``receive(channel)`` and going straight back to it after every message,
as a consumer does. Each round is one ``group_send`` of ``{"type", "t": perf_counter()}``:

  dlv/s        members / (time from just before group_send until the last member got it)
  p50/p99 ms   per-delivery latency: receive time minus the send time in the message
  CPU us/dlv   process CPU time of the round (sender and receivers) per delivery
  send ms      how long the group_send call itself held the sender

Medians over --rounds rounds after one warm-up round (Channels: one round from 5,000 members,
as each of its receive() calls sweeps all channels and group members: minutes per round at
10,000). Capacity and expiries are set so nothing may be dropped; every receiver must get every
round's message, in order, or the run fails. "switchboard (future)" is the same layer waited on
with ``receive_future``, the way Switchboard's own consumers wait (no coroutine per wait).

Usage: ./scripts/bench fanout [--quick] [--members N] [--rounds N] [--channels-rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.inmemory_layer import LAYERS  # configures Django first: Channels' layer needs it

GROUP = "bench-fanout"
METRICS = ("dlv/s", "p50 ms", "p99 ms", "CPU us/dlv", "send ms")
HIGHER_IS_BETTER = {"dlv/s"}


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_layer(
    make: Callable[..., Any], members: int, rounds: int, use_future: bool
) -> dict[str, list[float]]:
    """All rounds on one layer; returns each metric's value per measured round."""
    total = rounds + 1  # the first round warms up and is not reported
    # Nothing may be dropped: room for every round's message, nothing expires during the run.
    layer = make(capacity=total + 10, expiry=3600, group_expiry=7 * 86400)
    names = [await layer.new_channel() for _ in range(members)]
    for name in names:
        await layer.group_add(GROUP, name)
    received_at = [0.0] * members
    counts = [0] * members
    errors: list[str] = []
    state = {"got": 0, "done": asyncio.Event()}

    def waiter(name: str) -> Callable[[], Awaitable[dict[str, Any]]]:
        if use_future:
            return lambda: layer.receive_future(name)
        return lambda: layer.receive(name)

    async def receiver(i: int, wait: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        while True:
            message = await wait()
            received_at[i] = time.perf_counter()
            if message.get("n") != counts[i] and len(errors) < 5:
                errors.append(f"member {i}: got round {message.get('n')}, expected {counts[i]}")
            counts[i] += 1
            state["got"] += 1
            if state["got"] == members:
                state["done"].set()

    tasks = [asyncio.ensure_future(receiver(i, waiter(n))) for i, n in enumerate(names)]
    await asyncio.sleep(0.1)  # every receiver is now waiting in receive()
    results: dict[str, list[float]] = {m: [] for m in METRICS}
    try:
        for n in range(total):
            gc.collect()
            state["got"] = 0
            state["done"] = done = asyncio.Event()
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            await layer.group_send(GROUP, {"type": "x", "t": t0, "n": n})
            sent = time.perf_counter()
            seen = -1
            while not done.is_set():  # fail once deliveries stop coming, however slow they are
                if state["got"] == seen:
                    raise SystemExit(f"round {n}: only {seen}/{members} members got the message")
                seen = state["got"]
                try:
                    await asyncio.wait_for(done.wait(), 2)
                except TimeoutError:
                    pass
            cpu = time.process_time() - cpu0
            if n == 0:
                continue
            latencies = sorted(r - t0 for r in received_at)
            results["dlv/s"].append(members / (max(received_at) - t0))
            results["p50 ms"].append(percentile(latencies, 0.50) * 1e3)
            results["p99 ms"].append(percentile(latencies, 0.99) * 1e3)
            results["CPU us/dlv"].append(cpu / members * 1e6)
            results["send ms"].append((sent - t0) * 1e3)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    missing = sum(1 for c in counts if c != total)
    if errors or missing:
        raise SystemExit(
            f"deliveries lost or out of order: {missing} members did not get all {total} "
            f"messages; {'; '.join(errors)}"
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 members, 3 rounds")
    parser.add_argument("--members", type=int, default=None, help="default 10000")
    parser.add_argument("--rounds", type=int, default=None, help="default 5")
    parser.add_argument(
        "--channels-rounds", type=int, default=None, help="default --rounds, 1 from 5000 members"
    )
    args = parser.parse_args()
    members = args.members or (1_000 if args.quick else 10_000)
    rounds = args.rounds or (3 if args.quick else 5)
    # Channels' receive() sweeps every channel and every group member on each call, so a round
    # costs it O(members^2): about two minutes at 10,000 members.
    channels_rounds = args.channels_rounds or (rounds if members < 5_000 else 1)

    try:
        import uvloop

        uvloop.install()
        loop_name = "uvloop"
    except ImportError:
        loop_name = "asyncio"

    variants = {
        "switchboard": (LAYERS["switchboard"], False, rounds),
        "channels": (LAYERS["channels"], False, channels_rounds),
        "switchboard (future)": (LAYERS["switchboard"], True, rounds),
    }
    medians: dict[str, dict[str, float]] = {}
    for name, (make, use_future, n) in variants.items():
        print(f"  {name}: {members} members, {n} round(s)…", file=sys.stderr, flush=True)
        started = time.perf_counter()
        per_round = asyncio.run(run_layer(make, members, n, use_future))
        medians[name] = {m: statistics.median(v) for m, v in per_round.items()}
        print(
            f"  {name}: done in {time.perf_counter() - started:.1f}s, every member got all "
            f"{n + 1} messages",
            file=sys.stderr,
            flush=True,
        )

    print(
        f"One group_send to {members:,} members, each waiting in receive() "
        f"({loop_name}, median of {rounds} rounds, Channels {channels_rounds})"
    )
    print(f"{'':22s}" + "".join(f"{m:>13s}" for m in METRICS))
    for name, m in medians.items():
        print(f"{name:22s}" + "".join(f"{m[k]:13,.1f}" for k in METRICS))
    sb, ch = medians["switchboard"], medians["channels"]
    ratios = [sb[k] / ch[k] if k in HIGHER_IS_BETTER else ch[k] / sb[k] for k in METRICS]
    print(f"{'sb vs channels':22s}" + "".join(f"{r:12.2f}x" for r in ratios))
    print("(ratio: how many times better Switchboard's receive() is; >1 is better)")


if __name__ == "__main__":
    main()
