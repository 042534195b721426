"""Data binding benchmark: notifications per second from model saves to subscribed sockets.

The site (bench/binding_site) serves one demultiplexed socket per client with a ``ticks``
binding stream and a ``saver`` stream. --subscribers sockets subscribe to every tick; one more
socket asks the ``saver`` stream to save --saves ticks (updates of 50 rows in turn, in a
thread of the server process, as a view would), and the clock runs until every subscriber has
received every notification. Coalescing is off (each save is one notification); SQLite runs
with synchronous=OFF so the disk's fsync is not what is measured.

  one process   saves and sockets in one server process, in-memory layer
  via Redis     saves in a second server process, sockets in the first, Redis layer between
                (redis-server started by this script on a free port)

Measures, median of --rounds rounds:
  notifications/s   subscriber deliveries per second (saves x subscribers / time to the last)
  saves/s           model saves per second in the saving process while notifying

Usage: ./scripts/bench binding [--quick] [--rounds N] [--subscribers N] [--saves N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from websockets.asyncio.client import connect  # noqa: E402

from bench.server_ws import PY, Server  # noqa: E402
from tests.support.redis_servers import RedisServer  # noqa: E402

APP = "bench.binding_site.asgi:application"
ROWS = 50


def serve_command(port: int) -> list[str]:
    return [PY, "-m", "switchboard", "serve", APP, "--host", "127.0.0.1", "--port", str(port)] + [
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def prepare_database(env: dict[str, str]) -> None:
    script = (
        "import django; django.setup();"
        "from django.core.management import call_command;"
        "call_command('migrate', run_syncdb=True, verbosity=0);"
        "from bench.binding_site.models import Tick;"
        f"Tick.objects.all().delete(); Tick.objects.bulk_create([Tick() for _ in range({ROWS})])"
    )
    subprocess.run([PY, "-c", script], cwd=ROOT, env=env, check=True, timeout=120)


async def _frames_of(ws, stream: str) -> dict:
    while True:
        frame = json.loads(await ws.recv())
        if frame.get("stream") == stream and "payload" in frame:
            return frame["payload"]


async def one_round(sub_port: int, save_port: int, subscribers: int, saves: int) -> tuple:
    sockets = [
        await connect(f"ws://127.0.0.1:{sub_port}/ws/", max_queue=None) for _ in range(subscribers)
    ]
    saver = await connect(f"ws://127.0.0.1:{save_port}/ws/")
    try:
        for ws in sockets:
            await ws.send(json.dumps({"stream": "ticks", "payload": {"action": "subscribe"}}))
        for ws in sockets:
            answer = await asyncio.wait_for(_frames_of(ws, "ticks"), 30)
            assert answer.get("ok"), answer

        received = [0] * len(sockets)

        async def drain(i: int, ws) -> None:
            while received[i] < saves:
                received[i] += (await ws.recv()).count('"action"')

        started = time.perf_counter()
        await saver.send(json.dumps({"stream": "saver", "payload": {"saves": saves}}))
        try:
            await asyncio.wait_for(
                asyncio.gather(*(drain(i, ws) for i, ws in enumerate(sockets))), 120
            )
        except TimeoutError:
            missing = subscribers * saves - sum(received)
            raise SystemExit(
                f"{missing} notifications never arrived (of {subscribers * saves})"
            ) from None
        elapsed = time.perf_counter() - started
        saved = await asyncio.wait_for(_frames_of(saver, "saver"), 60)
        return subscribers * saves / elapsed, saves / saved["seconds"]
    finally:
        for ws in [*sockets, saver]:
            await ws.close()


def run(mode: str, args: argparse.Namespace, redis: RedisServer | None) -> tuple[float, float]:
    db = tempfile.NamedTemporaryFile(prefix="bench-binding-", suffix=".sqlite3", delete=False)
    db.close()
    env = dict(os.environ, PYTHONPATH=ROOT, BENCH_BINDING_DB=db.name)
    env["DJANGO_SETTINGS_MODULE"] = "bench.binding_site.settings"
    if redis is not None:
        env["BENCH_REDIS_URL"] = redis.url
    prepare_database(env)
    extra = {k: env[k] for k in ("BENCH_BINDING_DB", "BENCH_REDIS_URL") if k in env}
    servers = [Server("subscribers", serve_command, path="/ws/", env=extra)]
    if mode == "via Redis":
        servers.append(Server("saver", serve_command, path="/ws/", env=extra))
    try:
        results = [
            asyncio.run(one_round(servers[0].port, servers[-1].port, args.subscribers, args.saves))
            for _ in range(args.rounds)
        ]
    finally:
        for server in servers:
            server.stop()
        os.unlink(db.name)
    return (
        statistics.median(r[0] for r in results),
        statistics.median(r[1] for r in results),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--saves", type=int, default=1000)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.saves = 1, min(args.saves, 200)
    print(
        f"{args.subscribers} subscribed sockets, {args.saves} saves per round, "
        f"{args.rounds} round(s), median"
    )
    print(f"{'':14}{'notifications/s':>18}{'saves/s':>12}")
    redis = RedisServer(name="bench-binding")
    try:
        for mode in ("one process", "via Redis"):
            notifications, saves = run(mode, args, redis if mode == "via Redis" else None)
            print(f"{mode:14}{notifications:>18,.0f}{saves:>12,.0f}", flush=True)
    finally:
        redis.cleanup()


if __name__ == "__main__":
    main()
