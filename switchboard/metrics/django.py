"""The metrics as a Django view, for projects that prefer a URL to ``--metrics-port``::

    from switchboard.metrics.django import metrics_view

    urlpatterns = [..., path("metrics/", metrics_view)]

The view checks nothing: put it behind authentication or an IP allow-list (at the proxy, or
by wrapping the view). It answers with the metrics of the process that served the request:
the Switchboard server running it, if any (under another server only the layer and default
registry metrics appear), the channel layers this process has built, and its background
tasks' counters once it has used them (``switchboard_tasks_*``, :mod:`switchboard.metrics.tasks`:
a web process's enqueued tasks). With ``--workers N`` each scrape reaches one worker, whichever
the kernel picked; use ``--metrics-port`` there.
"""

from __future__ import annotations

import threading

from django.http import HttpRequest, HttpResponse
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from switchboard.server.runtime.serving import serving_states

from .collectors import build_registry

__all__ = ["metrics_view"]

_registry: CollectorRegistry | None = None
_registry_lock = threading.Lock()


def _get_registry() -> CollectorRegistry:
    global _registry
    with _registry_lock:
        if _registry is None:
            states = serving_states()
            worker = states[0].worker if states else None
            _registry = build_registry(serving_states, worker=worker)
        return _registry


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus text format (OpenMetrics when the scraper asks for it)."""
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(_get_registry()), content_type=content_type)
