"""RQ's job function for bench/tasks.py (the worker imports it by its dotted path)."""

from __future__ import annotations

from bench.tasks_peers import record

QUEUE = "bench"


def noop(sent: float | None = None) -> None:
    record(sent)
