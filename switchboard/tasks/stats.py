"""Counters of this process's tasks, per task name, read by ``switchboard.metrics.tasks`` at
scrape time (from another thread: it copies before it iterates)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["TaskStats", "stats"]

EVENTS = ("enqueued", "started", "succeeded", "failed", "retried")


@dataclass
class TaskStats:
    counts: dict[str, Counter[str]] = field(default_factory=lambda: {e: Counter() for e in EVENTS})
    # Run times of finished attempts, by task name; the collector drains them into buckets.
    run_times: list[tuple[str, float]] = field(default_factory=list)
    # Tasks waiting per queue, as the last worker poll saw them (a gauge).
    queue_depths: dict[str, int] = field(default_factory=dict)

    def count(self, event: str, name: str) -> None:
        self.counts[event][name] += 1

    def ran(self, name: str, seconds: float) -> None:
        if len(self.run_times) < 100_000:  # nobody scrapes: don't grow without bound
            self.run_times.append((name, seconds))


stats = TaskStats()
