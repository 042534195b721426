"""IPC channel layer benchmark: IPC vs Switchboard's Redis layer vs channels_redis, one run.

The IPC layer needs no server; the Redis layers use a redis-server this script starts on a free
loopback port (tests/support/redis_servers.py). Same machine, same event loop policy, and the
same workloads as bench/redis_layer.py (whose measuring functions are reused):

  p2p msgs/s       --pairs sender/receiver pairs; the channels belong to a second layer
                   instance, so every message crosses the transport (sockets or Redis) as it
                   would between processes; each sender keeps at most --window in flight
  fan-out dlv/s    --procs OS processes, each with --rooms rooms x --room-members members
                   (rooms shared by all processes), every process sending to every room;
                   deliveries per second over all processes, until the last delivery
  group 5000       group_send to --members channels of one layer instance, all waiting in
                   receive(): time of the group_send call (and until the last delivery)

Targets (issue 12): IPC >= 2x Switchboard's Redis layer on each, >= 20x channels_redis core
point-to-point. On a shared or busy machine the ratios are noisy: see the load printed first.

Usage: ./scripts/bench ipc_layer [--quick] [--rounds N] [--only ipc,switchboard,core]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench import redis_layer as base  # noqa: E402
from tests.support.redis_servers import RedisServer  # noqa: E402

LAYERS = ("ipc", "switchboard", "core")
LABELS = {"ipc": "IPC", "switchboard": "SB Redis", "core": "channels_redis core"}
_redis_make_layer = base.make_layer


def make_layer(kind: str, where: str, **options: Any) -> Any:
    """``where``: the runtime directory for IPC, the Redis URL otherwise."""
    if kind == "ipc":
        from switchboard.layers.ipc import IPCChannelLayer

        return IPCChannelLayer(path=where, **options)
    return _redis_make_layer(kind, where, **options)


# bench.redis_layer's measuring functions build their layers through its make_layer.
base.make_layer = make_layer


def fanout_worker(*args: Any) -> None:
    # A module-level target, so spawned processes import this module (and its make_layer).
    base.fanout_worker(*args)


def bench_fanout(kind: str, where: str, args: argparse.Namespace) -> tuple[float, int, int]:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Barrier(args.procs)
    results = ctx.Queue()
    workers = [
        ctx.Process(
            target=fanout_worker,
            args=(
                kind,
                where,
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
            outcomes.append(results.get(timeout=base.TIMEOUT * 2 + 60))
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


def measure(kind: str, where_for: Callable[[str], str], args: argparse.Namespace) -> dict:
    """``where_for(measurement)``: where that measurement's layers meet (emptied first)."""
    loop = args.loop
    jobs: list[tuple[str, Callable[[str], Any]]] = [
        (
            "p2p",
            lambda where: base.median_of(
                args.rounds,
                partial(
                    base.run,
                    partial(
                        base.bench_p2p, kind, where, args.messages, args.pairs, args.window, True
                    ),
                    loop,
                ),
            ),
        ),
        (
            "fanout",
            lambda where: base.median_of(args.rounds, partial(bench_fanout, kind, where, args)),
        ),
        (
            "group",
            lambda where: base.run(
                partial(base.bench_group, kind, where, args.members, max(3, args.rounds + 2)),
                loop,
            ),
        ),
    ]
    res: dict[str, Any] = {}
    for name, job in jobs:
        t = time.perf_counter()
        try:
            res[name] = job(where_for(name))
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
        ("p2p msgs/s", "p2p", None, True),
        (f"fan-out dlv/s ({args.procs} procs)", "fanout", 0, True),
        (f"group_send {args.members} call ms", "group", 0, False),
        (f"group_send {args.members} last ms", "group", 1, False),
    ]
    others = [k for k in kinds if k != "ipc"]
    header = ["", *[LABELS[k] for k in kinds]]
    if "ipc" in kinds:
        header += [f"IPC/{LABELS[k]}" for k in others]
    table = [header]
    for label, name, i, higher in rows:
        line = [label, *[base.fmt(get(k, name, i)) for k in kinds]]
        if "ipc" in kinds:
            line += [base.ratio(get("ipc", name, i), get(k, name, i), higher) for k in others]
        table.append(line)
    base.print_rows(table, get, kinds, LABELS)
    print("ratios: >1 means the IPC layer is better (faster, or a shorter call)")
    print("targets: IPC >= 2x SB Redis on each row, >= 20x channels_redis core on p2p")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument(
        "--only", default=",".join(LAYERS), help="comma list of " + "/".join(LAYERS)
    )
    parser.add_argument("--messages", type=int, default=None, help="p2p messages per round")
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--room-members", type=int, default=10)
    parser.add_argument("--fanout-msgs", type=int, default=None, help="group_sends per room/proc")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.messages = args.messages or (4000 if args.quick else 20000)
    args.fanout_msgs = args.fanout_msgs or (40 if args.quick else 200)
    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    for kind in kinds:
        if kind not in LAYERS:
            parser.error(f"unknown layer {kind!r}")

    results: dict[str, dict[str, Any]] = {}
    runtime = tempfile.mkdtemp(prefix="sb-ipc-bench-")
    try:
        with RedisServer(name="bench") as server:
            print(
                f"redis-server {server.url}; IPC in {runtime}; loop {args.loop}; "
                f"rounds {args.rounds}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
                file=sys.stderr,
            )

            def redis(_name: str) -> str:
                server.flushall()
                return server.url

            def ipc(name: str) -> str:
                # The IPC layer's "server" is its runtime directory: a fresh one each time.
                return os.path.join(runtime, name)

            for kind in kinds:
                results[kind] = measure(kind, ipc if kind == "ipc" else redis, args)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    print_table(results, kinds, args)


if __name__ == "__main__":
    main()
