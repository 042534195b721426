"""Dramatiq on its Redis broker, for bench/tasks.py: ``dramatiq bench.tasks_peers.dramatiq_actors``.

Default middleware; no retries (a failure should show as a lost task, not run again).
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench.tasks_peers import URL_ENV, record

QUEUE = "bench"

broker = RedisBroker(url=os.environ[URL_ENV])
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def noop(sent: float | None = None) -> None:
    record(sent)
