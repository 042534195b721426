"""Task workers in subprocesses (``python -m django runworker --tasks`` of
tests/sites/tasks_site) and the same settings for the test process, which enqueues with
Django's API: :class:`TaskSite`. Not part of the package."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.test import override_settings

from tests.support.gateway_processes import Proc

__all__ = ["TaskSite", "runs"]

REPO = Path(__file__).resolve().parents[2]
SETTINGS = "tests.sites.tasks_site.settings"


def runs(run_dir: Path, tag: str) -> list[tuple[str, int]]:
    """The ``(event, pid)`` lines a job of tests/sites/tasks_site/jobs.py wrote for ``tag``."""
    path = run_dir / tag
    if not path.exists():
        return []
    return [(e, int(p)) for e, p in (line.split() for line in path.read_text().splitlines())]


class TaskSite:
    """Workers of tests/sites/tasks_site on ``layers`` (CHANNEL_LAYERS), logs under ``logs``."""

    def __init__(
        self,
        logs: Path,
        layers: dict[str, Any],
        options: dict[str, Any] | None = None,
        queues: str = "default,mail,reports",
    ) -> None:
        self.logs = logs
        self.layers = layers
        self.options = options or {}
        self.queues = [q for q in queues.split(",") if q]
        self.run_dir = logs / "runs"
        self.run_dir.mkdir(exist_ok=True)
        os.environ["TASKS_RUN_DIR"] = str(self.run_dir)  # jobs run in-process too (in-memory)
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "TASKS_CHANNEL_LAYERS": json.dumps(layers),
            "TASKS_OPTIONS": json.dumps(self.options),
            "TASKS_QUEUES": queues,
            "TASKS_DATABASE": str(logs / "db.sqlite3"),
            "TASKS_RUN_DIR": str(self.run_dir),
            "SB_TASKS_WORKER": "1",
            "PYTHONUNBUFFERED": "1",
        }
        self.procs: list[Proc] = []

    @contextlib.contextmanager
    def settings(self) -> Iterator[None]:
        """The test process configured like the workers (enqueue, get_result, refresh)."""
        tasks = {
            "default": {
                "BACKEND": "switchboard.tasks.ChannelLayerBackend",
                "QUEUES": self.queues,
                "OPTIONS": self.options,
            }
        }
        with override_settings(CHANNEL_LAYERS=self.layers, TASKS=tasks):
            yield

    def worker(self, *options: str, wait: bool = True) -> Proc:
        """``runworker --tasks OPTIONS``, started (``wait``: until it says so)."""
        name = f"{len(self.procs) + 1:02d}-worker"
        proc = Proc(
            name,
            [sys.executable, "-m", "django", "runworker", "--tasks", *options],
            REPO,
            self.env,
            self.logs / f"{name}.log",
        )
        self.procs.append(proc)
        if wait:
            proc.wait_for("Running worker for")
        return proc

    def manage(self, *args: str, timeout: float = 60.0, check: bool = True) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout + done.stderr

    def runs(self, tag: str) -> list[tuple[str, int]]:
        return runs(self.run_dir, tag)

    def wait_runs(self, tag: str, count: int, timeout: float = 20.0, event: str = "start") -> None:
        deadline = time.monotonic() + timeout
        while sum(1 for e, _ in self.runs(tag) if e == event) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{tag}: {self.runs(tag)} after {timeout}s")
            time.sleep(0.02)

    def close(self) -> None:
        for proc in self.procs:
            proc.close()
