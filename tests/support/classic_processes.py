"""A Channels 1 deployment in subprocesses, as the talks deploy it: ``switchboard serve
c1site.asgi:channel_layer`` (the interface server) and ``manage.py runworker`` processes of
tests/sites/classic_site, or ``manage.py runserver`` alone, on a layer the test chooses, each
logging to its own file. Built on :mod:`tests.support.gateway_processes` (same ``Proc``, same
log files); not part of the package.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.support.example_server import free_port
from tests.support.gateway_processes import REPO, Deployment, Proc, ipc_layers, redis_layers

__all__ = ["CLASSIC_SITE", "ClassicDeployment", "Proc", "ipc_layers", "redis_layers"]

CLASSIC_SITE = REPO / "tests" / "sites" / "classic_site"
INMEMORY = {"default": {"BACKEND": "switchboard.layers.inmemory.InMemoryChannelLayer"}}


class ClassicDeployment(Deployment):
    """Interface servers and workers of the Channels 1 site on ``layers`` (CHANNEL_LAYERS,
    without ROUTING: the site's settings add it), logs and the SQLite file under ``logs``."""

    def __init__(self, logs: Path, layers: dict[str, Any], env: dict[str, str] | None = None):
        database = logs / "db.sqlite3"
        super().__init__(
            logs,
            layers,
            site=CLASSIC_SITE,
            application="c1site.asgi:channel_layer",
            env={
                "C1_CHANNEL_LAYERS": json.dumps(layers),
                "C1_DATABASE": str(database),
                **(env or {}),
            },
        )

    def interface(self, *options: str, wait: bool = True) -> tuple[Proc, str]:
        """``switchboard serve c1site.asgi:channel_layer`` on a free port, listening
        (``wait``); the process and "127.0.0.1:PORT"."""
        port = free_port()
        proc = self._start(
            "interface",
            [sys.executable, "-m", "switchboard", "serve", self.application]
            + ["--host", "127.0.0.1", "--port", str(port), *options],
        )
        if wait:
            proc.wait_for("Listening on")
        return proc, f"127.0.0.1:{port}"

    def worker(self, *options: str, wait: bool = True) -> Proc:
        """``manage.py runworker OPTIONS``: with no channel names, every routed channel."""
        proc = self._start("worker", [sys.executable, "manage.py", "runworker", *options])
        if wait:  # printed once the routing is loaded, just before the worker listens
            proc.wait_for("Running worker for")
        return proc

    def runserver(self, *options: str, wait: bool = True) -> tuple[Proc, str]:
        """``manage.py runserver --noreload`` on a free port: interface and workers in one
        process."""
        port = free_port()
        proc = self._start(
            "runserver",
            [sys.executable, "manage.py", "runserver", "--noreload", *options]
            + [f"127.0.0.1:{port}"],
        )
        if wait:
            proc.wait_for("Listening on")
        return proc, f"127.0.0.1:{port}"

    def migrate(self) -> None:
        """The site's tables (its apps have no migrations)."""
        self.manage("migrate", "--run-syncdb", "-v0")

    def create_users(self, password: str, *names: str, staff: tuple[str, ...] = ()) -> None:
        """Users ``names`` with ``password``; the ones in ``staff`` are staff."""
        self.manage(
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model\n"
            f"for name in {list(names)!r}:\n"
            f"    get_user_model().objects.create_user(name, password={password!r}, "
            f"is_staff=name in {list(staff)!r})",
        )
