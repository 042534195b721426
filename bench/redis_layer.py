"""Redis channel layer benchmark: Switchboard vs channels_redis 4.3 (core and pubsub layers).

All layers run in the same run against a redis-server this script starts on a free loopback port
(tests/support/redis_servers.py), emptied between layers; all on the same event loop policy.

Measures (median of --rounds rounds where a round is cheap):
  p2p msgs/s       --pairs sender/receiver pairs, each on its own new_channel(), in one process;
                   each sender keeps at most --window messages in flight (below every capacity)
  ping-pong        round trips between two channels: median and p99 in ms
  group 5000       group_send to a group of --members channels of one layer instance, all
                   waiting in receive(): time of the group_send call and until the LAST delivery
  fan-out dlv/s    --procs OS processes, each with --rooms rooms x --room-members members per room
                   (rooms shared by all processes); one sender per room per process does
                   --fanout-msgs group_sends, paced by a window on its own local deliveries;
                   deliveries per second over all processes, until the last delivery

Usage: ./scripts/bench redis_layer [--quick] [--rounds N] [--only switchboard,core,pubsub]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.support.redis_servers import RedisServer  # noqa: E402

LAYERS = ("switchboard", "core", "pubsub")
LABELS = {
    "switchboard": "Switchboard",
    "core": "channels_redis core",
    "pubsub": "channels_redis pubsub",
}
TIMEOUT = 120.0


def make_layer(kind: str, url: str, **options: Any) -> Any:
    """A fresh layer of ``kind`` on ``url``; built inside the running loop."""
    if kind == "switchboard":
        from switchboard.layers.redis import RedisChannelLayer

        return RedisChannelLayer(hosts=[url], **options)
    if kind == "core":
        from channels_redis.core import RedisChannelLayer as CoreLayer

        return CoreLayer(hosts=[url], **options)
    if kind == "pubsub":
        from channels_redis.pubsub import RedisPubSubChannelLayer

        # The pubsub layer has no capacity/expiry: queues are unbounded in process memory.
        options.pop("capacity", None)
        options.pop("expiry", None)
        return RedisPubSubChannelLayer(hosts=[url], **options)
    raise ValueError(kind)


async def close_layer(layer: Any) -> None:
    try:
        await asyncio.wait_for(layer.flush(), 10)
    except Exception:  # noqa: BLE001 - best effort between measurements
        pass
    close = getattr(layer, "close", None) or getattr(layer, "close_pools", None)
    if close is not None:
        try:
            await asyncio.wait_for(close(), 10)
        except Exception:  # noqa: BLE001
            pass


def run(coro_factory: Callable[[], Any], loop_kind: str) -> Any:
    if loop_kind == "uvloop":
        import uvloop

        return uvloop.run(coro_factory())
    return asyncio.run(coro_factory())


# -- (a) point to point ----------------------------------------------------------------------


async def bench_p2p(
    kind: str, url: str, total: int, pairs: int, window: int, via_redis: bool
) -> float:
    """``via_redis``: the channels belong to a second layer instance, so every message crosses
    Redis as it would between processes; otherwise sender and receiver share one instance."""
    # channels_redis core keeps all of a process's channels in one list, so the capacity must
    # cover every pair's window; the same generous capacity is given to every layer.
    receiving = make_layer(kind, url, capacity=10_000)
    sending = make_layer(kind, url, capacity=10_000) if via_redis else receiving
    try:
        channels = [await receiving.new_channel() for _ in range(pairs)]
        per_pair = total // pairs

        async def pair(channel: str) -> None:
            slots = asyncio.Semaphore(window)

            async def sender() -> None:
                for i in range(per_pair):
                    await slots.acquire()
                    await sending.send(channel, {"type": "bench.msg", "n": i, "text": "hello"})

            async def receiver() -> None:
                for _ in range(per_pair):
                    await receiving.receive(channel)
                    slots.release()

            await asyncio.gather(sender(), receiver())

        # Warm up connections and subscriptions outside the timing.
        for channel in channels:
            await sending.send(channel, {"type": "warm"})
            await asyncio.wait_for(receiving.receive(channel), 10)
        start = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(pair(c) for c in channels)), TIMEOUT)
        return per_pair * pairs / (time.perf_counter() - start)
    finally:
        await close_layer(receiving)
        if sending is not receiving:
            await close_layer(sending)


# -- (b) ping-pong ---------------------------------------------------------------------------


async def bench_pingpong(kind: str, url: str, trips: int, via_redis: bool) -> tuple[float, float]:
    """Round trips ping -> echo -> pong; ``via_redis``: the echo side is another layer instance."""
    layer = make_layer(kind, url)
    other = make_layer(kind, url) if via_redis else layer
    try:
        ping = await other.new_channel()
        pong = await layer.new_channel()

        async def echo() -> None:
            while True:
                message = await other.receive(ping)
                await other.send(pong, message)

        echoer = asyncio.get_running_loop().create_task(echo())
        try:
            for _ in range(20):  # warm-up
                await layer.send(ping, {"type": "ping"})
                await asyncio.wait_for(layer.receive(pong), 10)
            samples = []
            for i in range(trips):
                start = time.perf_counter()
                await layer.send(ping, {"type": "ping", "n": i})
                await asyncio.wait_for(layer.receive(pong), 10)
                samples.append((time.perf_counter() - start) * 1000)
        finally:
            echoer.cancel()
            await asyncio.gather(echoer, return_exceptions=True)
        samples.sort()
        return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    finally:
        await close_layer(layer)
        if other is not layer:
            await close_layer(other)


# -- (c) group_send to a big group -----------------------------------------------------------


class _Tally:
    """Arrivals of one group message at every member."""

    def __init__(self, members: int) -> None:
        self.expected = members
        self.received = 0
        self.last = 0.0
        self.done = asyncio.get_running_loop().create_future()

    async def member(self, layer: Any, channel: str) -> None:
        await layer.receive(channel)
        self.last = time.perf_counter()
        self.received += 1
        if self.received == self.expected and not self.done.done():
            self.done.set_result(None)


async def bench_group(kind: str, url: str, members: int, rounds: int) -> tuple[float, float]:
    layer = make_layer(kind, url, group_expiry=3600)
    try:
        group = "bench-big"
        channels = [await layer.new_channel() for _ in range(members)]
        # One by one: channels_redis core runs out of pooled connections with 5000 at once.
        for channel in channels:
            await layer.group_add(group, channel)
        # Warm-up send through the group, so subscriptions and pools exist.
        await layer.group_send(group, {"type": "warm"})
        await asyncio.wait_for(asyncio.gather(*(layer.receive(c) for c in channels)), TIMEOUT)
        call_ms, last_ms = [], []
        for r in range(rounds):
            tally = _Tally(members)

            tasks = [
                asyncio.get_running_loop().create_task(tally.member(layer, c)) for c in channels
            ]
            await asyncio.sleep(0.05)  # every receiver is waiting before the send
            start = time.perf_counter()
            await layer.group_send(group, {"type": "bench.group", "round": r, "text": "hi"})
            called = time.perf_counter()
            try:
                await asyncio.wait_for(tally.done, TIMEOUT)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            call_ms.append((called - start) * 1000)
            last_ms.append((tally.last - start) * 1000)
        return statistics.median(call_ms), statistics.median(last_ms)
    finally:
        await close_layer(layer)


# -- (d) cross-process chat fan-out ----------------------------------------------------------


def fanout_worker(
    kind: str,
    url: str,
    index: int,
    procs: int,
    rooms: int,
    room_members: int,
    messages: int,
    window: int,
    loop_kind: str,
    ready: Any,
    results: Any,
) -> None:
    async def main() -> tuple[int, float, float]:
        layer = make_layer(kind, url, capacity=10_000, group_expiry=3600)
        try:
            members: list[list[str]] = []
            for r in range(rooms):
                room = [await layer.new_channel() for _ in range(room_members)]
                for channel in room:
                    await layer.group_add(f"room{r}", channel)
                members.append(room)
            expected = rooms * room_members * procs * messages
            count = [0]
            last = [0.0]
            # Highest own sequence number seen by member 0 of each room: paces that room's sender.
            seen = [-1] * rooms
            progress = [asyncio.Event() for _ in range(rooms)]
            all_done = asyncio.Event()

            async def receiver(r: int, m: int, channel: str) -> None:
                while True:
                    message = await layer.receive(channel)
                    if message.get("type") != "chat.message":
                        continue
                    count[0] += 1
                    last[0] = time.monotonic()
                    if m == 0 and message["sender"] == index:
                        seen[r] = message["seq"]
                        progress[r].set()
                    if count[0] >= expected:
                        all_done.set()

            async def sender(r: int) -> None:
                for seq in range(messages):
                    while seq - seen[r] > window:
                        progress[r].clear()
                        await progress[r].wait()
                    await layer.group_send(
                        f"room{r}",
                        {"type": "chat.message", "sender": index, "seq": seq, "text": "hi all"},
                    )

            loop = asyncio.get_running_loop()
            receivers = [
                loop.create_task(receiver(r, m, channel))
                for r, room in enumerate(members)
                for m, channel in enumerate(room)
            ]
            await asyncio.sleep(0.2)
            await loop.run_in_executor(None, ready.wait, 60)
            start = time.monotonic()
            try:
                await asyncio.gather(*(sender(r) for r in range(rooms)))
                await asyncio.wait_for(all_done.wait(), TIMEOUT)
            except TimeoutError:
                pass
            finally:
                for task in receivers:
                    task.cancel()
                await asyncio.gather(*receivers, return_exceptions=True)
            # Let the other processes finish before this one's groups and pools go away.
            await loop.run_in_executor(None, ready.wait, TIMEOUT)
            return count[0], start, last[0]
        finally:
            await close_layer(layer)

    try:
        results.put(("ok", index, run(main, loop_kind)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        results.put(("error", index, repr(exc)))


def bench_fanout(kind: str, url: str, args: argparse.Namespace) -> tuple[float, int, int]:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Barrier(args.procs)
    results = ctx.Queue()
    workers = [
        ctx.Process(
            target=fanout_worker,
            args=(
                kind,
                url,
                i,
                args.procs,
                args.rooms,
                args.room_members,
                args.fanout_msgs,
                args.window,
                args.loop,
                ready,
                results,
            ),
        )
        for i in range(args.procs)
    ]
    for worker in workers:
        worker.start()
    outcomes = []
    try:
        for _ in workers:
            outcomes.append(results.get(timeout=TIMEOUT * 2 + 60))
    finally:
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.kill()
                worker.join()
    errors = [o for o in outcomes if o[0] != "ok"]
    if errors:
        raise RuntimeError(f"fan-out worker failed: {errors}")
    delivered = sum(o[2][0] for o in outcomes)
    start = min(o[2][1] for o in outcomes)
    end = max(o[2][2] for o in outcomes)
    expected = args.procs * args.rooms * args.room_members * args.procs * args.fanout_msgs
    return delivered / (end - start), delivered, expected


# -- driver ----------------------------------------------------------------------------------


def median_of(rounds: int, fn: Callable[[], Any]) -> Any:
    values = [fn() for _ in range(rounds)]
    if isinstance(values[0], tuple):
        return tuple(statistics.median(v[i] for v in values) for i in range(len(values[0])))
    return statistics.median(values)


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}{unit}"
    if value >= 10:
        return f"{value:.1f}{unit}"
    return f"{value:.3f}{unit}"


def ratio(a: float | None, b: float | None, higher_is_better: bool) -> str:
    if not a or not b:
        return "-"
    return f"{(a / b if higher_is_better else b / a):.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument(
        "--only", default=",".join(LAYERS), help="comma list of " + "/".join(LAYERS)
    )
    parser.add_argument(
        "--skip",
        default="",
        help="comma list of p2p,p2p_redis,pingpong,pingpong_redis,group,fanout",
    )
    parser.add_argument("--messages", type=int, default=None, help="p2p messages per round")
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--trips", type=int, default=None)
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--room-members", type=int, default=10)
    parser.add_argument("--fanout-msgs", type=int, default=None, help="group_sends per room/proc")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    quick = args.quick
    args.rounds = args.rounds or (1 if quick else 3)
    args.messages = args.messages or (4000 if quick else 20000)
    args.trips = args.trips or (300 if quick else 2000)
    args.fanout_msgs = args.fanout_msgs or (40 if quick else 200)
    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    for kind in kinds:
        if kind not in LAYERS:
            parser.error(f"unknown layer {kind!r}")

    results: dict[str, dict[str, Any]] = {}
    with RedisServer(name="bench") as server:
        print(
            f"redis-server {server.url}; loop {args.loop}; rounds {args.rounds}; "
            f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
            file=sys.stderr,
        )
        for kind in kinds:
            results[kind] = measure_layer(server, kind, args, skip)
    print_table(results, kinds, args)


def measure_layer(
    server: RedisServer, kind: str, args: argparse.Namespace, skip: set[str]
) -> dict[str, Any]:
    url, loop = server.url, args.loop
    group_rounds = max(3, args.rounds + 2)
    jobs: list[tuple[str, Callable[[], Any]]] = []
    for via, suffix in ((False, ""), (True, "_redis")):
        p2p = partial(bench_p2p, kind, url, args.messages, args.pairs, args.window, via)
        jobs.append(("p2p" + suffix, partial(median_of, args.rounds, partial(run, p2p, loop))))
        pingpong = partial(bench_pingpong, kind, url, args.trips, via)
        jobs.append(("pingpong" + suffix, partial(run, pingpong, loop)))
    jobs.append(
        ("group", partial(run, partial(bench_group, kind, url, args.members, group_rounds), loop))
    )
    jobs.append(("fanout", partial(median_of, args.rounds, partial(bench_fanout, kind, url, args))))
    res: dict[str, Any] = {}
    for name, job in jobs:
        if name in skip:
            continue
        server.flushall()
        t = time.perf_counter()
        try:
            res[name] = job()
        except Exception as exc:  # noqa: BLE001 - reported, the other measurements go on
            res[name] = None
            print(f"  {kind} {name}: FAILED {exc!r}", file=sys.stderr)
            continue
        print(f"  {kind} {name}: {res[name]} ({time.perf_counter() - t:.1f}s)", file=sys.stderr)
    return res


def print_table(results: dict[str, dict[str, Any]], kinds: list[str], args: argparse.Namespace):
    def get(kind: str, name: str, i: int | None = None) -> float | None:
        value = results.get(kind, {}).get(name)
        if value is None:
            return None
        return value if i is None else value[i]

    rows = [
        ("p2p msgs/s, one layer", "p2p", None, "", True),
        ("p2p msgs/s, via Redis", "p2p_redis", None, "", True),
        ("ping-pong median ms, one layer", "pingpong", 0, "", False),
        ("ping-pong p99 ms, one layer", "pingpong", 1, "", False),
        ("ping-pong median ms, via Redis", "pingpong_redis", 0, "", False),
        ("ping-pong p99 ms, via Redis", "pingpong_redis", 1, "", False),
        (f"group_send {args.members} call ms", "group", 0, "", False),
        (f"group_send {args.members} last ms", "group", 1, "", False),
        (f"fan-out dlv/s ({args.procs} procs)", "fanout", 0, "", True),
    ]
    header = ["", *[LABELS[k] for k in kinds]]
    if "switchboard" in kinds:
        header += [f"SB/{k}" for k in ("core", "pubsub") if k in kinds]
    table = [header]
    for label, name, i, unit, higher in rows:
        line = [label, *[fmt(get(k, name, i), unit) for k in kinds]]
        if "switchboard" in kinds:
            for other in ("core", "pubsub"):
                if other in kinds:
                    line.append(ratio(get("switchboard", name, i), get(other, name, i), higher))
        table.append(line)
    print_rows(table, get, kinds, LABELS)
    print("ratios: >1 means Switchboard is better (faster or lower latency)")


def print_rows(table: list[list[str]], get: Any, kinds: list[str], labels: dict[str, str]) -> None:
    """The results table, columns aligned, then any fan-out that lost deliveries."""
    widths = [max(len(row[c]) for row in table) for c in range(len(table[0]))]
    print()
    for row in table:
        print(
            "  ".join(
                cell.rjust(w) if c else cell.ljust(w)
                for c, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    lost = [
        f"{labels[k]} delivered {get(k, 'fanout', 1):,.0f}/{get(k, 'fanout', 2):,.0f}"
        for k in kinds
        if get(k, "fanout", 1) is not None and get(k, "fanout", 1) != get(k, "fanout", 2)
    ]
    if lost:
        print("fan-out losses: " + "; ".join(lost))


if __name__ == "__main__":
    main()
