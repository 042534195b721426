"""Switchboard against an earlier commit of itself, in the same run: for restructurings and
optimisations of the hot paths, where the peer to beat is yesterday's code.

Each round runs every workload against both trees, alternating which goes first; the
earlier commit is checked out with ``git worktree`` into a temporary directory and removed
afterwards. Servers run as subprocesses from each tree (``cwd`` and ``PYTHONPATH`` set to it);
their CPU time (utime + stime from ``/proc/PID/stat``) is read before and after the load, so
each row shows throughput and server CPU per operation, the figure that matters on a noisy
two-core machine where the load generator competes for the same cores.

  http keep-alive   wrk -t1 -c50 against a hello-world ASGI app: req/s, CPU µs/request
  http close        wrk with ``Connection: close``, 10 connections: req/s, CPU µs/request
  ws echo           10 clients, one 32-byte text message in flight each: msgs/s, µs/message
  django /plain/    wrk -t1 -c50 on bench/django_project's plain view (the native path):
                    req/s, CPU µs/request
  consumer echo     10 clients through AsyncWebsocketConsumer (bench.consumer_apps, the
                    in-memory layer): msgs/s, µs/message
  layer round trip  in-memory layer send + receive in one process: msgs/s, CPU µs/message
  redis round trip  the same through the Redis layer and a redis-server started here (the
                    CPU is the client process's: Redis's own is not ours to count)

Usage: ./scripts/bench trees [--before REV] [--rounds N] [--duration S] [--quick]
                             [--only "django /plain/,consumer echo"]
(``--before`` defaults to HEAD~1; the "after" tree is the working tree, uncommitted changes
included)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench.django_http import prepare_db
from bench.django_http import wrk as django_wrk
from bench.server_http import wrk
from bench.server_ws import APP, PY, ROOT, bench_echo, free_port, open_ws
from tests.support.redis_servers import RedisServer

TICKS = os.sysconf("SC_CLK_TCK")

LAYER_SNIPPET = """
import asyncio, time
from switchboard.layers.inmemory import InMemoryChannelLayer
from switchboard.layers.redis import RedisChannelLayer
N = {n}
async def main():
    layer = {make}
    channel = {channel}
    message = {{"type": "chat.message", "text": "hello world", "n": 1}}
    for _ in range(1000):
        await layer.send(channel, message); await layer.receive(channel)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(N):
        await layer.send(channel, message)
        await layer.receive(channel)
    print(time.process_time() - cpu, time.perf_counter() - wall)
    if hasattr(layer, "close"):
        await layer.close()
asyncio.run(main())
"""


class TreeServer:
    """``switchboard serve`` of ``app`` (the hello/echo app), run from ``tree``'s own package,
    ready once a WebSocket handshake on ``ws_path`` succeeds."""

    def __init__(
        self, tree: str, app: str = APP, ws_path: str = "/ws", env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        command = [PY, "-m", "switchboard", "serve", app, "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*command, "--no-access-log", "--log-level", "warning"],
            cwd=tree,
            env=dict(os.environ, **(env or {}), PYTHONPATH=tree),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                open_ws(self.port, path=ws_path).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"switchboard from {tree} did not start") from None
                time.sleep(0.1)

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def http(tree: str, duration: float, close: bool) -> tuple[float, float]:
    server = TreeServer(tree)
    try:
        wrk(server.port, 1, 10)  # warm up
        before = server.cpu_seconds()
        start = time.perf_counter()
        rate = wrk(server.port, duration, 10 if close else 50, close=close)
        elapsed = time.perf_counter() - start
        cpu = server.cpu_seconds() - before
    finally:
        server.stop()
    requests = rate * elapsed
    return rate, cpu / requests * 1e6 if requests else float("nan")


def ws_echo(tree: str, duration: float) -> tuple[float, float]:
    server = TreeServer(tree)
    try:
        bench_echo(server.port, 10, 0.5)  # warm up
        before = server.cpu_seconds()
        rate = bench_echo(server.port, 10, duration)
        cpu = server.cpu_seconds() - before
    finally:
        server.stop()
    return rate, cpu / (rate * duration) * 1e6


def django_plain(tree: str, duration: float, env: dict[str, str]) -> tuple[float, float]:
    server = TreeServer(tree, "bench.django_project.asgi:application", env=env)
    try:
        django_wrk(server.port, "/plain/", 1, 10)  # warm up
        before = server.cpu_seconds()
        rate, count = django_wrk(server.port, "/plain/", duration, 50)
        cpu = server.cpu_seconds() - before
    finally:
        server.stop()
    return rate, cpu / count * 1e6 if count else float("nan")


def consumer_echo(tree: str, duration: float) -> tuple[float, float]:
    server = TreeServer(tree, "bench.consumer_apps:application", ws_path="/echo/")
    try:
        bench_echo(server.port, 10, 0.5, path="/echo/")  # warm up
        before = server.cpu_seconds()
        rate = bench_echo(server.port, 10, duration, path="/echo/")
        cpu = server.cpu_seconds() - before
    finally:
        server.stop()
    return rate, cpu / (rate * duration) * 1e6


def layer(tree: str, n: int, redis_url: str | None = None) -> tuple[float, float]:
    make, channel = "InMemoryChannelLayer()", "await layer.new_channel()"
    if redis_url:
        # A worker channel (no "!"): through Redis itself, not the process's local delivery.
        make, channel = f"RedisChannelLayer(hosts=[{redis_url!r}])", "'bench.trees'"
    out = subprocess.run(
        [PY, "-c", LAYER_SNIPPET.format(n=n, make=make, channel=channel)],
        cwd=tree,
        env=dict(os.environ, PYTHONPATH=tree),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    cpu, wall = float(out[0]), float(out[1])
    return n / wall, cpu / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="HEAD~1", help="the commit to compare HEAD's tree with")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--quick", action="store_true", help="one round of 2 s")
    ap.add_argument("--only", default="", help="comma-separated workloads (default: all)")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 2.0
    if not shutil.which("wrk"):
        sys.exit("wrk is required (apt-get install wrk)")
    rev = subprocess.run(
        ["git", "rev-parse", "--short", args.before], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    if not rev:
        sys.exit(f"unknown commit {args.before!r}")
    scratch = tempfile.mkdtemp(prefix="sb-before-")
    earlier = os.path.join(scratch, "tree")
    subprocess.run(["git", "worktree", "add", "--detach", "-q", earlier, rev], cwd=ROOT, check=True)
    trees = {"before": earlier, "after": ROOT}
    django_env = {
        "DJANGO_SETTINGS_MODULE": "bench.django_project.settings",
        "BENCH_DJANGO_DB": os.path.join(scratch, "db.sqlite3"),
    }
    prepare_db(dict(os.environ, PYTHONPATH=ROOT, **django_env))
    workloads = {
        "http keep-alive": lambda t: http(t, args.duration, close=False),
        "http close": lambda t: http(t, args.duration, close=True),
        "ws echo": lambda t: ws_echo(t, args.duration),
        "django /plain/": lambda t: django_plain(t, args.duration, django_env),
        "consumer echo": lambda t: consumer_echo(t, args.duration),
        "layer round trip": lambda t: layer(t, 20_000 if args.quick else 100_000),
        "redis round trip": lambda t: layer(t, 2_000 if args.quick else 10_000, redis.url),
    }
    only = [w for w in args.only.split(",") if w]
    if only:
        unknown = set(only) - set(workloads)
        if unknown:
            sys.exit(f"unknown workloads {sorted(unknown)}; choose from {list(workloads)}")
        workloads = {w: workloads[w] for w in only}
    results = {(w, t): [] for w in workloads for t in trees}
    redis = RedisServer().start()
    try:
        for r in range(args.rounds):
            order = list(trees) if r % 2 == 0 else list(reversed(trees))
            for work, run in workloads.items():
                for name in order:
                    results[work, name].append(run(trees[name]))
                    rate, cpu = results[work, name][-1]
                    print(
                        f"round {r + 1} {work} {name}: {rate:,.0f}/s, {cpu:.1f} µs", file=sys.stderr
                    )
    finally:
        redis.stop()
        subprocess.run(["git", "worktree", "remove", "--force", earlier], cwd=ROOT)
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"\nHEAD vs {rev}: median of {args.rounds} x {args.duration:g}s, {os.cpu_count()} CPUs")
    print(
        f"{'':20}{'before/s':>12}{'after/s':>12}{'ratio':>8}"
        f"{'before µs':>11}{'after µs':>10}{'ratio':>8}"
    )
    for work in workloads:
        b_rate = statistics.median(x[0] for x in results[work, "before"])
        a_rate = statistics.median(x[0] for x in results[work, "after"])
        b_cpu = statistics.median(x[1] for x in results[work, "before"])
        a_cpu = statistics.median(x[1] for x in results[work, "after"])
        print(
            f"{work:20}{b_rate:12,.0f}{a_rate:12,.0f}{a_rate / b_rate:7.2f}x"
            f"{b_cpu:11.1f}{a_cpu:10.1f}{a_cpu / b_cpu:7.2f}x"
        )
    print("(ratios: after / before; µs: server CPU per request or message)")


if __name__ == "__main__":
    main()
