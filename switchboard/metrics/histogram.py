"""Histograms kept by the collectors themselves, filled at scrape time.

The code being measured only appends plain seconds to a list (no ``prometheus_client`` on its
hot path); a collector moves them into the cumulative buckets of a :class:`Histogram` when
Prometheus scrapes. Used for the gateway's acknowledgement latency and the tasks' run times.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable
from typing import TypeVar

from prometheus_client.core import HistogramMetricFamily, Metric

__all__ = ["Histogram", "take_all"]

T = TypeVar("T")


def take_all(values: list[T]) -> list[T]:
    """Remove and return what ``values`` holds now, while another thread may append to it.

    The copy and the delete are each atomic under the GIL and the owner only appends: what
    it appends in between stays for next time. Callers that may run at once (two scrapes)
    must hold a lock around it, or both would take the same values.
    """
    taken = len(values)
    if not taken:
        return []
    copied = values[:taken]
    del values[:taken]
    return copied


class Histogram:
    """Cumulative buckets over ``buckets`` (upper bounds, in seconds), thread-safe."""

    def __init__(self, buckets: Iterable[float]) -> None:
        self.bounds = sorted(buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound
        self.total = 0.0
        self._lock = threading.Lock()

    def observe(self, values: Iterable[float]) -> None:
        """Count each of ``values``."""
        with self._lock:
            self._add(values)

    def drain(self, values: list[float]) -> None:
        """Count and remove the values in ``values``, a list another thread appends to."""
        with self._lock:  # two scrapes at once must not both take the same values
            self._add(take_all(values))

    def _add(self, values: Iterable[float]) -> None:
        for value in values:
            self.counts[bisect.bisect_left(self.bounds, value)] += 1
            self.total += value

    def samples(self) -> tuple[list[tuple[str, float]], float]:
        """``([(le, cumulative count), ...], sum)``, as ``HistogramMetricFamily`` takes them."""
        with self._lock:
            counts, total = list(self.counts), self.total
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip([*self.bounds, float("inf")], counts, strict=True):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return buckets, total

    def family(self, name: str, doc: str, labels: list[str], values: list[str]) -> Metric:
        """A family holding this one histogram, labelled ``values``."""
        histogram = HistogramMetricFamily(name, doc, labels=labels)
        histogram.add_metric(values, *self.samples())
        return histogram
