"""A Channels 1 project in one process: ``manage.py runserver`` serves the interface and runs
its workers beside it, as Channels 1's runserver did (with threads for the consumers).

The workers start at lifespan startup and stop at shutdown; with a process-local layer (the
in-memory default of a development setup) this is the only way a Channels 1 project runs.
"""

from __future__ import annotations

import asyncio
from typing import Any

from switchboard.classic.interface import ChannelLayerApp, InterfaceServer, Receive, Send
from switchboard.classic.routing import Router
from switchboard.classic.worker import HTTP_REQUEST, ClassicWorker

__all__ = ["EmbeddedWorkers"]


class EmbeddedWorkers:
    """The interface server for ``alias`` (or ``application``, in a project that serves
    modern consumers beside its Channels 1 routing), with a worker for ``router`` in the same
    loop."""

    def __init__(
        self, router: Router, alias: str, threads: int = 4, application: Any = None
    ) -> None:
        self.router = router
        self.interface = InterfaceServer(ChannelLayerApp(alias))
        self.application = application if application is not None else self.interface
        self.threads = threads
        self._worker: ClassicWorker | None = None
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            self._start()  # with lifespan off: at the first request
            await self.application(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _start(self) -> None:
        if self._task is not None:
            return
        channels = self.router.channel_names() | {HTTP_REQUEST}
        self._worker = ClassicWorker(
            self.router, self.interface.layer, sorted(channels), threads=self.threads
        )
        self._task = asyncio.ensure_future(self._worker.run())

    async def _stop(self) -> None:
        if self._worker is not None and self._task is not None:
            self._worker.stop()
            await asyncio.gather(self._task, return_exceptions=True)
