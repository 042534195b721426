"""The ASGI lifespan protocol: startup before listening, shutdown after draining."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

logger = logging.getLogger("switchboard.server")


async def acknowledge_lifespan(receive: Any, send: Any) -> None:
    """The lifespan protocol of an application with nothing to start or stop (a WSGI
    application, an interface server): both phases acknowledged, so the server carries on."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class LifespanFailed(RuntimeError):
    """The application reported ``lifespan.startup.failed`` (or shutdown failed)."""


class Lifespan:
    def __init__(self, app: Any, mode: str = "auto") -> None:
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = {}
        self.supported = mode != "off"
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    async def _main(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "state": self.state,
        }
        try:
            await self.app(scope, self._inbox.get, self._outbox.put)
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, asyncio.CancelledError):
                raise
            if self.mode == "on":
                logger.error("Lifespan failed", exc_info=exc)
                await self._outbox.put({"type": "lifespan.startup.failed", "message": str(exc)})
            else:
                # Routine (Django's handler raises on it): not worth an operator's attention.
                logger.debug("ASGI 'lifespan' unsupported by the application: %s", exc)
                self.supported = False
                await self._outbox.put({"type": "_unsupported"})
        else:
            await self._outbox.put({"type": "_returned"})

    async def _exchange(self, event: str) -> None:
        await self._inbox.put({"type": f"lifespan.{event}"})
        reply = await self._outbox.get()
        kind = reply["type"]
        if kind in ("_unsupported", "_returned") and event == "startup":
            if kind == "_returned":
                self.supported = False
            return
        if kind == f"lifespan.{event}.failed":
            raise LifespanFailed(reply.get("message") or f"lifespan {event} failed")

    async def startup(self) -> None:
        if not self.supported:
            return
        self._task = asyncio.get_running_loop().create_task(self._main())
        await self._exchange("startup")

    async def shutdown(self) -> None:
        if not self.supported or self._task is None or self._task.done():
            return
        try:
            await self._exchange("shutdown")
        finally:
            self._task.cancel()
