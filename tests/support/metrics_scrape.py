"""Reading ``/metrics`` in tests: the Prometheus text parsed into samples by name and labels."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Samples", "parse", "scrape", "scrape_until", "value"]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        return parse(response.read().decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, (key, sorted(k for k in samples if k[0].startswith(name)))
    return samples[key]


def scrape_until(
    port: int, check: Callable[[Samples], bool], timeout: float = 10.0, prefix: str = ""
) -> Samples:
    """Scrapes until ``check`` passes; fails showing the samples whose names start with
    ``prefix``."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(port)
        if check(samples):
            return samples
        if time.monotonic() > deadline:
            shown = {k: v for k, v in samples.items() if k[0].startswith(prefix)}
            raise AssertionError(f"metrics on {port} never got there: {shown}")
        time.sleep(0.05)
