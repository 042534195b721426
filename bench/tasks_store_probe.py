"""How fast the Redis task store alone goes (no Django, no task code): enqueue N records, then
claim them in batches and finish each, on a redis-server this probe starts itself.

    .venv/bin/python bench/tasks_store_probe.py [--tasks 20000] [--batch 100]

Prints operations per second, and the CPU each task cost this process and redis-server (what
a busy machine distorts least); not a test. Enqueues are issued ``--concurrency`` at a time, as
many producers would (they leave as pipelines); one worker then claims ``--batch`` at a time
and finishes the batch's tasks concurrently, as the worker does.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from switchboard.layers.redis import RedisChannelLayer  # noqa: E402
from switchboard.layers.stores.tasks import SUCCESSFUL, TaskRecord  # noqa: E402
from tests.support.redis_servers import RedisServer  # noqa: E402


class _Meter:
    """Wall time, this process's CPU time and the server's CPU time over one phase."""

    def __init__(self, server: RedisServer) -> None:
        self.client = server.client()

    def _server_cpu(self) -> float:
        info = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def start(self) -> None:
        self.wall, self.cpu, self.redis = time.perf_counter(), time.process_time(), 0.0
        self.redis = self._server_cpu()

    def report(self, label: str, tasks: int, how: str) -> None:
        wall = time.perf_counter() - self.wall
        cpu = time.process_time() - self.cpu
        redis_cpu = self._server_cpu() - self.redis
        print(
            f"{label:13} {tasks / wall:8,.0f} tasks/s   CPU per task: client "
            f"{cpu / tasks * 1e6:5.1f} µs, redis {redis_cpu / tasks * 1e6:5.1f} µs   ({how})"
        )


def _records(count: int) -> list[TaskRecord]:
    now = time.time()
    return [
        TaskRecord(id=uuid.uuid4().hex, path="bench.tasks.noop", args=[i], enqueued_at=now)
        for i in range(count)
    ]


async def _probe(server: RedisServer, tasks: int, batch: int, concurrency: int) -> None:
    layer = RedisChannelLayer(hosts=[server.url])
    store = layer.task_store()
    meter = _Meter(server)
    try:
        await store.enqueue(TaskRecord(id="warm-up", path="bench.tasks.noop", queue="warm-up"))
        records = _records(tasks)
        meter.start()
        for i in range(0, tasks, concurrency):
            await asyncio.gather(*(store.enqueue(r) for r in records[i : i + concurrency]))
        meter.report("enqueue", tasks, f"{concurrency} at a time")

        meter.start()
        done = 0
        while claimed := await store.claim(["default"], "probe", batch, 60):
            finished = [replace(r, status=SUCCESSFUL, finished_at=time.time()) for r in claimed]
            results = await asyncio.gather(*(store.finish(r, "probe", 60) for r in finished))
            assert all(results)
            done += len(claimed)
        meter.report("claim+finish", tasks, f"claims of {batch}, their finishes concurrent")
        assert done == tasks, (done, tasks)

        one = _records(2000)
        meter.start()
        for record in one:
            await store.enqueue(record)
        for _ in one:
            [claimed] = await store.claim(["default"], "probe", 1, 60)
            await store.finish(replace(claimed, status=SUCCESSFUL), "probe", 60)
        meter.report("one by one", len(one), "enqueue, claim 1, finish: 3 round trips")
    finally:
        await store.flush()
        await layer.close()
        meter.client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=100)
    options = parser.parse_args()
    with RedisServer(name="tasks-probe") as server:
        asyncio.run(_probe(server, options.tasks, options.batch, options.concurrency))


if __name__ == "__main__":
    main()
