"""The systems bench/tasks.py measures, each a small class with the same methods: constructed
with its redis-server's URL (also in ``os.environ[URL_ENV]`` by then, as the task modules read
it on import), then ``setups(args)`` (how its worker is run), ``prefill(n)`` (enqueue n no-op
tasks, fast: not timed), ``enqueue(sent)`` (one task, as an application would) and ``close()``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass, field
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
BIN = os.path.dirname(PY)
DJANGO_SETTINGS = "bench.tasks_project.settings"
SYSTEMS = ("switchboard", "celery", "rq", "dramatiq")


@dataclass
class Setup:
    """One way of running a system's worker."""

    label: str
    cmd: list[str]
    tasks: int  # how many the throughput phase enqueues (0: --tasks)
    env: dict[str, str] = field(default_factory=dict)


class Celery:
    key, label = "celery", "Celery"

    def __init__(self, url: str) -> None:
        from bench.tasks_peers import celery_app

        self.app, self.noop = celery_app.app, celery_app.noop
        self.queue = celery_app.QUEUE

    def setups(self, args: argparse.Namespace) -> list[Setup]:
        base = [PY, "-m", "celery", "-A", "bench.tasks_peers.celery_app", "worker", "-Q"]
        base += [self.queue, "--without-heartbeat", "--without-gossip", "--without-mingle"]
        base += ["--loglevel", "WARNING"]
        c = str(args.concurrency)
        return [
            Setup(f"--pool threads --concurrency {c}", [*base, "--pool", "threads", "-c", c], 0),
            Setup("--pool solo", [*base, "--pool", "solo"], 0),
        ]

    def prefill(self, n: int) -> None:
        with self.app.producer_or_acquire() as producer:
            for _ in range(n):
                self.noop.apply_async(producer=producer)

    def enqueue(self, sent: float) -> None:
        self.noop.delay(sent)

    def close(self) -> None:
        self.app.close()


class RQ:
    key, label = "rq", "RQ"

    def __init__(self, url: str) -> None:
        import redis
        from rq import Queue

        from bench.tasks_peers import rq_jobs

        self.url, self.noop = url, rq_jobs.noop
        self.conn = redis.Redis.from_url(url)
        self.queue = Queue(rq_jobs.QUEUE, connection=self.conn)

    def setups(self, args: argparse.Namespace) -> list[Setup]:
        base = [os.path.join(BIN, "rq"), "worker", "--url", self.url, "--path", ROOT]
        base += ["--logging_level", "WARNING", "--disable-job-desc-logging"]
        simple = [*base, "--worker-class", "rq.worker.SimpleWorker", self.queue.name]
        forking = [*base, self.queue.name]
        fork_tasks = min(args.tasks, args.fork_tasks)
        return [
            Setup(
                "SimpleWorker (no fork per job, 1 at a time)",
                simple,
                min(args.tasks, args.rq_tasks),
            ),
            Setup("Worker (fork per job, 1 at a time)", forking, fork_tasks),
        ]

    def prefill(self, n: int) -> None:
        for start in range(0, n, 1000):
            batch = [
                self.queue.prepare_data(self.noop, result_ttl=0)
                for _ in range(min(1000, n - start))
            ]
            with self.conn.pipeline() as pipe:
                self.queue.enqueue_many(batch, pipeline=pipe)
                pipe.execute()

    def enqueue(self, sent: float) -> None:
        self.queue.enqueue(self.noop, sent, result_ttl=0)

    def close(self) -> None:
        self.conn.close()


class Dramatiq:
    key, label = "dramatiq", "Dramatiq"

    def __init__(self, url: str) -> None:
        from bench.tasks_peers import dramatiq_actors

        self.broker, self.noop = dramatiq_actors.broker, dramatiq_actors.noop

    def setups(self, args: argparse.Namespace) -> list[Setup]:
        c = str(args.concurrency)
        cmd = [PY, "-m", "dramatiq", "bench.tasks_peers.dramatiq_actors", "--processes", "1"]
        cmd += ["--threads", c, "--skip-logging"]
        return [Setup(f"--processes 1 --threads {c}", cmd, 0)]

    def prefill(self, n: int) -> None:
        for _ in range(n):
            self.noop.send()

    def enqueue(self, sent: float) -> None:
        self.noop.send(sent)

    def close(self) -> None:
        self.broker.close()


class Switchboard:
    key, label = "switchboard", "Switchboard"

    def __init__(self, url: str) -> None:
        import django

        os.environ["DJANGO_SETTINGS_MODULE"] = DJANGO_SETTINGS
        django.setup()
        # Not for the peers' workers (Celery would set Django up from it) nor their clients.
        del os.environ["DJANGO_SETTINGS_MODULE"]
        from bench.tasks_project.tasks import noop

        self.noop = noop
        # One loop for every enqueue: aenqueue() is the backend's own path, and faster here
        # than enqueue(), which hands each call to a bridge thread's loop.
        self.loop = asyncio.new_event_loop()

    def setups(self, args: argparse.Namespace) -> list[Setup]:
        c = str(args.concurrency)
        cmd = [PY, "-m", "django", "runworker", "--tasks", "--concurrency", c, "-v", "0"]
        env = {"DJANGO_SETTINGS_MODULE": DJANGO_SETTINGS}
        return [Setup(f"runworker --tasks --concurrency {c}", cmd, 0, env=env)]

    def prefill(self, n: int) -> None:
        async def fill() -> None:
            # Concurrent batches overlap their round trips to Redis (not timed: only faster).
            for start in range(0, n, 100):
                await asyncio.gather(*(self.noop.aenqueue() for _ in range(min(100, n - start))))

        self.loop.run_until_complete(fill())

    def enqueue(self, sent: float) -> None:
        self.loop.run_until_complete(self.noop.aenqueue(sent))

    def close(self) -> None:
        from switchboard.layers import channel_layers

        async def close_layers() -> None:
            for alias in list(channel_layers.backends):
                await channel_layers[alias].close()

        try:
            self.loop.run_until_complete(close_layers())
        finally:
            self.loop.close()


CLASSES: dict[str, Any] = {
    "switchboard": Switchboard,
    "celery": Celery,
    "rq": RQ,
    "dramatiq": Dramatiq,
}
