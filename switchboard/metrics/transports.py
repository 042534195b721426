"""Fallback transports' metrics: ``switchboard_transport_*``, from the plain counters
``switchboard.transports.stats`` keeps (read at scrape time, possibly from another thread:
the counters are copied before they are iterated).

This package sits below ``switchboard.transports`` and does not import it: the counters are
found in ``sys.modules`` once the process has served a transport request, and read by their
attributes. A process that never did shows no ``switchboard_transport_*`` metrics.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

__all__ = ["TransportCollector", "TransportsSource", "imported_transport_stats"]

# The TransportStats objects to read (summed if several).
TransportsSource = Callable[[], Iterable[Any]]

TRANSPORTS = ("sse", "poll")


def imported_transport_stats() -> list[Any]:
    """This process's transport counters, once it has used a transport."""
    module = sys.modules.get("switchboard.transports.stats")
    return [module.stats] if module is not None else []


class TransportCollector:
    """``switchboard_transport_*`` of the stats ``source()`` returns, by transport."""

    def __init__(self, source: TransportsSource, worker: int | None = None) -> None:
        self.source = source
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        stats = list(self.source())
        if not stats:
            return
        names, values = (["worker"], [str(self.worker)]) if self.worker is not None else ([], [])
        labels = [*names, "transport"]

        def by_transport(attr: str) -> dict[str, int]:
            totals = dict.fromkeys(TRANSPORTS, 0)
            for one in stats:
                for transport, count in dict(getattr(one, attr)).items():
                    totals[transport] = totals.get(transport, 0) + count
            return totals

        sessions = GaugeMetricFamily(
            "switchboard_transport_sessions",
            "WebSocket sessions open over a fallback transport (SSE, long-polling).",
            labels=labels,
        )
        for transport, count in sorted(by_transport("sessions_open").items()):
            sessions.add_metric([*values, transport], count)
        yield sessions
        frames = CounterMetricFamily(
            "switchboard_transport_frames",
            "Frames carried by fallback transports, by direction (out: sent by applications; "
            "in: posted by clients).",
            labels=[*labels, "direction"],
        )
        for direction, attr in (("out", "frames_out"), ("in", "frames_in")):
            for transport, count in sorted(by_transport(attr).items()):
                frames.add_metric([*values, transport, direction], count)
        yield frames
        overflows = CounterMetricFamily(
            "switchboard_transport_overflows",
            "Transport sessions ended (1013) because their client fell behind by more than "
            "the buffer holds.",
            labels=labels,
        )
        for transport, count in sorted(by_transport("overflows").items()):
            overflows.add_metric([*values, transport], count)
        yield overflows
