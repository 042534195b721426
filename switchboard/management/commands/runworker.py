"""``manage.py runworker CHANNEL [CHANNEL ...]``: consume named channels in this process.

``manage.py runworker --gateway``: run the WebSocket consumers of the connections that
``switchboard serve --gateway`` holds (:mod:`switchboard.gateway`), alone or with channels.

``manage.py runworker --tasks [QUEUE ...]``: run background tasks (:mod:`switchboard.tasks`),
alone or with the rest.
"""

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
        parser.add_argument("channels", nargs="*", help="Channel names to listen on")
        parser.add_argument(
            "--layer",
            default=DEFAULT_CHANNEL_LAYER,
            help="Alias of the channel layer in CHANNEL_LAYERS (default: %(default)s)",
        )
        parser.add_argument(
            "--gateway",
            action="store_true",
            help="Run the WebSocket consumers of connections held by `switchboard serve "
            "--gateway` processes on the same channel layer",
        )
        parser.add_argument(
            "--tasks",
            nargs="*",
            default=None,
            metavar="QUEUE",
            help="Run background tasks from these queues (none named: every queue of the "
            "backend's QUEUES, else 'default')",
        )
        parser.add_argument(
            "--tasks-backend",
            default="default",
            help="With --tasks: alias of the backend in TASKS (default: %(default)s)",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=8,
            help="With --tasks: tasks run at once; sync ones each take a thread "
            "(default: %(default)s)",
        )
        parser.add_argument(
            "--capacity",
            type=int,
            default=0,
            help="With --gateway: most connections this worker takes (default: no limit)",
        )
        parser.add_argument(
            "--shutdown-timeout",
            type=float,
            default=10.0,
            help="Seconds a stopping worker gives its consumers (--gateway) and tasks (--tasks) "
            "to finish, before their connections move anyway and unfinished tasks go back to "
            "their queue (default: %(default)s)",
        )
        parser.add_argument(
            "--only-channels",
            nargs="+",
            action="extend",
            default=[],
            metavar="PATTERN",
            help="Channels 1 routing: listen only on the routed channels matching these globs",
        )
        parser.add_argument(
            "--exclude-channels",
            nargs="+",
            action="extend",
            default=[],
            metavar="PATTERN",
            help="Channels 1 routing: do not listen on the routed channels matching these globs",
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=4,
            help="Channels 1 routing: threads running consumers (default: %(default)s)",
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=None,
            help="Serve Prometheus metrics at http://127.0.0.1:PORT/metrics",
        )

    def handle(self, *args: Any, channels: list[str], layer: str, **options: Any) -> None:
        gateway = options.get("gateway", False)
        tasks = options.get("tasks")
        classic = None if channels or tasks is not None else _classic_routing(layer)
        if not channels and not gateway and classic is None and tasks is None:
            raise CommandError(
                "Name at least one channel to listen on, give --gateway or --tasks, or set a "
                f"Channels 1 routing in CHANNEL_LAYERS[{layer!r}]['ROUTING']"
            )
        channel_layer = get_channel_layer(layer)
        if channel_layer is None:
            raise CommandError(f"No channel layer named {layer!r} is configured")
        try:
            channel_layer.valid_channel_names(channels, receive=True)
        except TypeError as exc:
            raise CommandError(str(exc)) from None
        if (gateway or classic is not None) and not channel_layer.spans_processes:
            who = "--gateway" if gateway else "A worker for the Channels 1 routing"
            raise CommandError(
                f"{who} needs a channel layer that spans processes, but CHANNEL_LAYERS"
                f"[{layer!r}] is {type(channel_layer).__name__}, whose messages never leave "
                "this process, so no server could reach this worker: use the IPC layer "
                "(switchboard.layers.ipc.IPCChannelLayer, one machine) or the Redis layer "
                "(switchboard.layers.redis.RedisChannelLayer, many machines), or run "
                "`manage.py runserver`, which runs its workers in the same process"
            )
        runners: list[Any] = []
        if tasks is not None:
            runners.append(_task_worker(tasks, options))
        if classic is not None:
            runners.append(_classic_worker(classic, channel_layer, options))
        if channels or gateway:
            application = self._application()
            if channels:
                _require_routes(application, channels)
                runners.append(Worker(application, channels, channel_layer))
            if gateway:
                runners.append(_gateway_worker(application, channel_layer, options))
        metrics = _serve_metrics(options.get("metrics_port"), runners)
        if options.get("verbosity", 1) >= 1:
            listened = channels or (runners[0].channels if classic is not None else [])
            what = [f"channels {', '.join(listened)}"] if listened else []
            if gateway:
                what.append("gateway connections")
            if tasks is not None:
                queues = ", ".join(runners[0].queues)
                what.append(f"tasks from {queues} ({runners[0].concurrency} at a time)")
            self.stdout.write(f"Running worker for {' and '.join(what)} on layer {layer!r}")
            self.stdout.flush()
        try:
            asyncio.run(self._run(runners, channel_layer))
        finally:
            if metrics is not None:
                metrics.close()
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
    async def _run(runners: list[Any], channel_layer: Any) -> None:
        loop = asyncio.get_running_loop()
        installed = []

        def stop() -> None:
            for runner in runners:
                runner.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # Not the main thread, or Windows.
                pass
        tasks = [asyncio.ensure_future(runner.run()) for runner in runners]
        try:
            # One stopping (a signal, or a layer failure) stops the others.
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            stop()
            await asyncio.gather(*tasks)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await channel_layer.close()


def _classic_routing(alias: str) -> Any:
    from switchboard.classic.routing import RoutingError, router_for

    try:
        return router_for(alias)
    except RoutingError as exc:
        raise CommandError(str(exc)) from None


def _classic_worker(router: Any, channel_layer: Any, options: dict[str, Any]) -> Any:
    from switchboard.classic.worker import HTTP_REQUEST, ClassicWorker, select_channels

    routed = router.channel_names() | {HTTP_REQUEST}  # http.request: Django's views
    listened = select_channels(
        routed, options.get("only_channels", ()), options.get("exclude_channels", ())
    )
    if not listened:
        raise CommandError(
            f"No routed channel is left to listen on (routed: {', '.join(sorted(routed))})"
        )
    for name in listened:
        if "!" in name:
            raise CommandError(f"Routed channel {name!r} is process-specific: no worker reads it")
    if options.get("threads", 4) < 1:
        raise CommandError("--threads must be at least 1")
    return ClassicWorker(router, channel_layer, listened, threads=options.get("threads", 4))


def _gateway_worker(application: Any, channel_layer: Any, options: dict[str, Any]) -> Any:
    from switchboard.gateway.worker import GatewayWorker, WorkerSettings

    if options.get("capacity", 0) < 0:
        raise CommandError("--capacity must be 0 (no limit) or more")
    settings = WorkerSettings(
        capacity=options.get("capacity", 0),
        shutdown_timeout=options.get("shutdown_timeout", 10.0),
    )
    return GatewayWorker(application, channel_layer, settings)


def _task_worker(queues: list[str], options: dict[str, Any]) -> Any:
    from django.core.exceptions import ImproperlyConfigured

    try:
        from switchboard.tasks.backend import ChannelLayerBackend
        from switchboard.tasks.worker import TaskWorker
    except ImproperlyConfigured as exc:
        raise CommandError(str(exc)) from None
    from switchboard.tasks.api import InvalidTask
    from switchboard.tasks.backend import task_backend

    alias = options.get("tasks_backend", "default")
    try:
        backend = task_backend(alias)
    except (ImproperlyConfigured, InvalidTask, KeyError) as exc:
        raise CommandError(f"TASKS[{alias!r}]: {exc}") from None
    if not isinstance(backend, ChannelLayerBackend):
        raise CommandError(
            f"TASKS[{alias!r}] is {type(backend).__name__}; runworker --tasks runs the tasks of "
            "switchboard.tasks.ChannelLayerBackend only"
        )
    try:
        layer = backend.layer()
    except ImproperlyConfigured as exc:
        raise CommandError(str(exc)) from None
    if not layer.spans_processes:
        raise CommandError(
            f"TASKS[{alias!r}] keeps its tasks in CHANNEL_LAYERS[{backend.settings.layer!r}], "
            f"a {type(layer).__name__}: tasks enqueued by another process never reach this "
            "worker (that layer runs them inside the process that enqueues them). Use the IPC "
            "layer (switchboard.layers.ipc.IPCChannelLayer, one machine) or the Redis layer "
            "(switchboard.layers.redis.RedisChannelLayer, many machines)"
        )
    unknown = [q for q in queues if backend.queues and q not in backend.queues]
    if unknown:
        raise CommandError(
            f"Queue(s) {', '.join(unknown)} are not in TASKS[{alias!r}]['QUEUES'] "
            f"({', '.join(sorted(backend.queues))})"
        )
    if options.get("concurrency", 8) < 1:
        raise CommandError("--concurrency must be at least 1")
    return TaskWorker(
        backend,
        queues or None,
        concurrency=options.get("concurrency", 8),
        shutdown_timeout=options.get("shutdown_timeout", 10.0),
    )


def _serve_metrics(port: int | None, runners: list[Any]) -> Any:
    if port is None:
        return None
    from switchboard.metrics.worker import serve_worker_metrics

    try:
        return serve_worker_metrics(port, runners)
    except Exception as exc:
        raise CommandError(f"--metrics-port {port}: {exc}") from exc


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
