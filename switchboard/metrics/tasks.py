"""Background tasks' metrics: ``switchboard_tasks_*``, from the ``TaskStats`` of this process.

Read at scrape time, in the metrics thread, from the plain counters ``switchboard.tasks.stats``
keeps anyway: ``counts[event][task name]``, ``run_times`` (``(task name, seconds)`` of each
finished attempt, appended by the worker; moved here into per-task histogram buckets at each
scrape) and ``queue_depths`` (refreshed by the worker every few seconds). The worker's loop
writes them while this reads: containers are copied before they are iterated.

This package does not import ``switchboard.tasks``: the stats come from a source given where
the parts are joined (``runworker --metrics-port`` through :mod:`switchboard.metrics.worker`,
the Django view in :mod:`switchboard.metrics.django`), and are read by their attributes.

Each collector drains the run times it reads: give a process's stats to one collector only.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from .histogram import Histogram, take_all

__all__ = [
    "RUN_BUCKETS",
    "TaskCollector",
    "TaskStatsLike",
    "TasksSource",
    "WorkerRunningTasks",
    "imported_task_stats",
]

# From 5 ms (a quick job) to 10 minutes (a long report); slower ones land in +Inf.
RUN_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)

# TaskStats event -> help of switchboard_tasks_<event>_total.
EVENTS = (
    ("enqueued", "Tasks enqueued by this process, by task name."),
    ("started", "Task attempts this process started, by task name."),
    ("succeeded", "Tasks that succeeded in this process, by task name."),
    (
        "failed",
        "Tasks that failed for good in this process (attempts used up, not retryable, or not "
        "importable), by task name.",
    ),
    ("retried", "Failed attempts this process scheduled again, by task name."),
)


@runtime_checkable
class TaskStatsLike(Protocol):
    """What is read of a ``switchboard.tasks.stats.TaskStats``."""

    @property
    def counts(self) -> Mapping[str, Mapping[str, int]]: ...

    @property
    def run_times(self) -> list[tuple[str, float]]: ...  # drained: taken from, not only read

    @property
    def queue_depths(self) -> Mapping[str, int]: ...


@runtime_checkable
class WorkerRunningTasks(Protocol):
    """What is read of a ``switchboard.tasks.worker.TaskWorker`` (its ``stats`` are a
    :class:`TaskStatsLike`)."""

    @property
    def stats(self) -> Any: ...

    @property
    def queues(self) -> Sequence[str]: ...

    @property
    def running(self) -> Mapping[str, Any]: ...


# The TaskStats objects to read (several are summed; the same one twice is read once).
TasksSource = Callable[[], Iterable[TaskStatsLike]]


class TaskCollector:
    """``switchboard_tasks_*`` of the stats ``source()`` returns; nothing while it returns
    none. ``workers``: the task workers of this process, for ``switchboard_tasks_running``
    (left out when there are none)."""

    def __init__(self, source: TasksSource, workers: Iterable[WorkerRunningTasks] = ()) -> None:
        self.source = source
        self.workers = list(workers)
        self.run_times: dict[str, Histogram] = {}
        self._lock = threading.Lock()

    def _drain(self, stats: list[TaskStatsLike]) -> dict[str, Histogram]:
        with self._lock:  # two scrapes at once must not both take the same run times
            for one in stats:
                by_task: dict[str, list[float]] = {}
                for name, seconds in take_all(one.run_times):
                    by_task.setdefault(name, []).append(seconds)
                for name, values in by_task.items():
                    if name not in self.run_times:
                        self.run_times[name] = Histogram(RUN_BUCKETS)
                    self.run_times[name].observe(values)
            return dict(self.run_times)

    def collect(self) -> Iterator[Metric]:
        stats = list({id(one): one for one in self.source()}.values())
        if not stats:
            return
        for event, doc in EVENTS:
            totals: dict[str, int] = {}
            for one in stats:
                counter = one.counts.get(event)
                for name, count in list(counter.items()) if counter is not None else ():
                    totals[name] = totals.get(name, 0) + count
            family = CounterMetricFamily(f"switchboard_tasks_{event}", doc, labels=["task"])
            for name in sorted(totals):
                family.add_metric([name], totals[name])
            yield family

        depths: dict[str, int] = {}
        for one in stats:
            for queue, waiting in list(one.queue_depths.items()):
                depths[queue] = depths.get(queue, 0) + waiting
        depth = GaugeMetricFamily(
            "switchboard_tasks_queue_depth",
            "Tasks ready to run in each queue, as this process's worker last saw it (refreshed "
            "every few seconds, for the queues it serves).",
            labels=["queue"],
        )
        for queue in sorted(depths):
            depth.add_metric([queue], depths[queue])
        yield depth

        if self.workers:
            running = GaugeMetricFamily(
                "switchboard_tasks_running", "Tasks this worker process is running now."
            )
            running.add_metric([], sum(len(worker.running) for worker in self.workers))
            yield running

        histograms = self._drain(stats)
        run_seconds = HistogramMetricFamily(
            "switchboard_tasks_run_seconds",
            "Seconds each task attempt ran in this process, by task name.",
            labels=["task"],
        )
        for name in sorted(histograms):
            run_seconds.add_metric([name], *histograms[name].samples())
        yield run_seconds


def imported_task_stats() -> list[Any]:
    """This process's task counters, once it has used tasks: this package never imports
    ``switchboard.tasks`` (and a process without tasks shows no ``switchboard_tasks_*``)."""
    module = sys.modules.get("switchboard.tasks.stats")
    return [module.stats] if module is not None else []
