"""Server-side cost for the server benchmarks: CPU time and RSS of a server's process tree.

A server may do its work in a child (granian always runs its worker in one, others do with
--workers), so both sum the process and all its descendants, every thread included.
"""

from __future__ import annotations

import psutil


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` and its live descendants."""
    total = 0.0
    for proc in _tree(pid):
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:  # a child that exited between listing and reading
            continue
        total += times.user + times.system
    return total


def tree_rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its live descendants, in KiB."""
    total = 0
    for proc in _tree(pid):
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total // 1024


class CpuMeter:
    """CPU seconds a server's process tree spends between ``start()`` and ``stop()``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.seconds = 0.0
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = tree_cpu_seconds(self.pid)

    def stop(self) -> float:
        self.seconds = tree_cpu_seconds(self.pid) - self._t0
        return self.seconds

    def us_per(self, operations: float) -> float:
        """Microseconds of CPU per operation (nan when nothing was done)."""
        return self.seconds * 1e6 / operations if operations else float("nan")
