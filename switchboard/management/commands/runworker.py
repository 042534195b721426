"""``manage.py runworker CHANNEL [CHANNEL ...]``: consume named channels in this process."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from switchboard.layers import get_channel_layer
from switchboard.layers.registry import DEFAULT_CHANNEL_LAYER
from switchboard.worker import Worker

logger = logging.getLogger("switchboard.worker")


class Command(BaseCommand):
    help = "Runs a worker that feeds messages from the named channels to ASGI_APPLICATION."
    # The worker serves channels, not HTTP; Django's system checks still run.
    requires_system_checks = "__all__"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("channels", nargs="+", help="Channel names to listen on")
        parser.add_argument(
            "--layer",
            default=DEFAULT_CHANNEL_LAYER,
            help="Alias of the channel layer in CHANNEL_LAYERS (default: %(default)s)",
        )

    def handle(self, *args: Any, channels: list[str], layer: str, **options: Any) -> None:
        channel_layer = get_channel_layer(layer)
        if channel_layer is None:
            raise CommandError(f"No channel layer named {layer!r} is configured")
        try:
            channel_layer.valid_channel_names(channels, receive=True)
        except TypeError as exc:
            raise CommandError(str(exc)) from None
        application = self._application()
        _require_routes(application, channels)
        worker = Worker(application, channels, channel_layer)
        if options.get("verbosity", 1) >= 1:
            self.stdout.write(
                f"Running worker for channels {', '.join(channels)} on layer {layer!r}"
            )
            self.stdout.flush()
        asyncio.run(self._run(worker))
        if options.get("verbosity", 1) >= 1:
            self.stdout.write("Worker stopped")

    @staticmethod
    def _application() -> Any:
        # Imported here so the command module loads even where routing is not importable.
        from switchboard.routing import get_default_application

        try:
            return get_default_application()
        except Exception as exc:
            raise CommandError(f"Cannot load ASGI_APPLICATION: {exc}") from exc

    @staticmethod
    async def _run(worker: Worker) -> None:
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, worker.stop)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # Not the main thread, or Windows.
                pass
        try:
            await worker.run()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await worker.channel_layer.close()


def _require_routes(application: Any, channels: list[str]) -> None:
    """Refuses to start for channels the application visibly cannot route.

    Without this the worker would start, then log an error and drop every message sent to such
    a channel. Only the routers (and middleware) whose tables we can read are looked into: an
    application of any other kind decides per message, so it gets the benefit of the doubt.
    """
    # Imported on use, as in _application (no cycle): the command module loads without them.
    from switchboard.middleware import BaseMiddleware
    from switchboard.routing import ChannelNameRouter, ProtocolTypeRouter

    app = application
    while True:
        if isinstance(app, BaseMiddleware):
            app = app.inner
        elif isinstance(app, ProtocolTypeRouter):
            if "channel" not in app.application_mapping:
                raise CommandError(
                    "ASGI_APPLICATION's ProtocolTypeRouter has no 'channel' entry, so no worker "
                    'channel can be served: add "channel": ChannelNameRouter({...}) to it'
                )
            app = app.application_mapping["channel"]
        elif isinstance(app, ChannelNameRouter):
            routed = app.application_mapping
            missing = [channel for channel in channels if channel not in routed]
            if missing:
                raise CommandError(
                    f"No application for channel(s) {', '.join(missing)} in ASGI_APPLICATION's "
                    f"ChannelNameRouter (it routes: {', '.join(sorted(routed)) or 'nothing'})"
                )
            return
        else:
            return
