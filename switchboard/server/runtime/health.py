"""Health endpoints answered by the server itself: ``--health-path`` and ``--ready-path``.

Both are off unless their path is given. Requests for them never reach the application (no
Django, no ``ALLOWED_HOSTS``, no middleware); every other request goes on unchanged.

* Liveness (``--health-path``): ``200 ok`` from the process's event loop. A process whose loop
  is stuck (an application blocking it) does not answer, which is what a liveness probe is for.
* Readiness (``--ready-path``): the checks registered with :func:`add_readiness_check` run,
  all at once, within ``--ready-timeout``; ``200 ready`` when every one returns, ``503`` with
  a line per failing check otherwise. With no check registered, a server that listens is
  ready. (A stopping server closes its listening socket first: a probe then finds nothing
  to connect to, which load balancers and Kubernetes count as not ready.)

The server does not know what an application depends on, so checks are hooks: Switchboard's
Django app registers a round trip through the default channel layer
(``switchboard.integration.health``); a project may register its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from switchboard.server.asgi.types import Receive, Scope, Send

__all__ = [
    "HealthEndpoints",
    "ReadinessCheck",
    "add_readiness_check",
    "readiness_checks",
    "remove_readiness_check",
    "wrap",
]

logger = logging.getLogger("switchboard.server")

# A readiness check: an async callable, ready when it returns, not ready when it raises.
ReadinessCheck = Callable[[], Awaitable[Any]]

_checks: dict[str, ReadinessCheck] = {}

# Longest failure reason quoted in a 503 body (an exception can carry a whole payload).
REASON_LIMIT = 200

_TEXT = [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store")]


def add_readiness_check(name: str, check: ReadinessCheck) -> None:
    """Have ``--ready-path`` run ``await check()``: not ready while it raises or overruns the
    timeout. A check registered under the same ``name`` is replaced."""
    _checks[name] = check


def remove_readiness_check(name: str) -> None:
    _checks.pop(name, None)


def readiness_checks() -> dict[str, ReadinessCheck]:
    """The registered checks, by name (a copy)."""
    return dict(_checks)


def check_path(path: str) -> str:
    """``path`` if it can be a health path (absolute, no query); else ``ValueError``."""
    if not path.startswith("/") or "?" in path or "#" in path:
        raise ValueError(f"a health path is an absolute path such as /healthz, not {path!r}")
    return path


class HealthEndpoints:
    """An ASGI application in front of ``app`` that answers the health paths itself.

    A path is matched exactly, on ``scope["path"]`` below ``scope["root_path"]`` (a prefix
    a proxy mounts the server under is not part of it); the query is ignored.
    """

    def __init__(
        self,
        app: Any,
        health_path: str | None = None,
        ready_path: str | None = None,
        ready_timeout: float = 1.0,
    ) -> None:
        self.app = app
        self.ready_timeout = ready_timeout
        self.routes: dict[str, Callable[[], Awaitable[tuple[int, bytes]]]] = {}
        if health_path is not None:
            self.routes[check_path(health_path)] = self._live
        if ready_path is not None:
            if ready_path == health_path:
                raise ValueError("--health-path and --ready-path must differ")
            self.routes[check_path(ready_path)] = self._ready
        self._running: asyncio.Task[list[str]] | None = None
        self._was_ready = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = None
        if scope["type"] == "http":
            path, root = scope["path"], scope.get("root_path")
            answer = self.routes.get(path[len(root) :] if root and path.startswith(root) else path)
        if answer is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            status, body = 405, b"method not allowed\n"
            headers = [*_TEXT, (b"allow", b"GET, HEAD")]
        else:
            status, body = await answer()
            headers = list(_TEXT)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _live(self) -> tuple[int, bytes]:
        return 200, b"ok\n"

    async def _ready(self) -> tuple[int, bytes]:
        # Probes that arrive while the checks run share their result: a load balancer
        # probing often (or several of them) does not multiply the checks.
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._run_checks())
        failures = await asyncio.shield(self._running)
        if failures:
            return 503, "\n".join(["not ready", *failures, ""]).encode()
        return 200, b"ready\n"

    async def _run_checks(self) -> list[str]:
        checks = readiness_checks()
        if not checks:
            return []
        tasks = {name: asyncio.ensure_future(_call(check)) for name, check in checks.items()}
        _, pending = await asyncio.wait(tasks.values(), timeout=self.ready_timeout)
        failures = []
        for name, task in tasks.items():
            if task in pending:
                task.cancel()
                failures.append(f"{name}: no answer within {self.ready_timeout:g}s")
            elif task.cancelled():
                failures.append(f"{name}: cancelled")
            elif task.exception() is not None:
                exc = task.exception()
                reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")
                failures.append(f"{name}: {reason[:REASON_LIMIT]}")
        # Said once per change, not per probe: a probe every few seconds would flood the log.
        if failures and self._was_ready:
            logger.warning("Not ready: %s", "; ".join(failures))
        elif not failures and not self._was_ready:
            logger.info("Ready again")
        self._was_ready = not failures
        return failures


async def _call(check: ReadinessCheck) -> Any:
    return await check()


def wrap(app: Any, config: Any) -> Any:
    """``app`` behind :class:`HealthEndpoints` when ``config`` names a health path (else
    ``app`` itself, so a server without them pays nothing per request)."""
    if isinstance(app, HealthEndpoints):
        app = app.app  # a second startup on the same Config: wrap once
    if config.health_path is None and config.ready_path is None:
        return app
    return HealthEndpoints(
        app,
        config.health_path,
        config.ready_path,
        config.ready_timeout,
    )
