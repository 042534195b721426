"""Channels 1's ``channels.asgi``: the ``channel_layer`` a project's ``asgi.py`` exposes.

A Channels 1 ``asgi.py`` reads::

    import os
    from switchboard.asgi import get_channel_layer

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")
    channel_layer = get_channel_layer()

and ``switchboard serve myproject.asgi:channel_layer`` serves it as an interface server
(:mod:`switchboard.classic.interface`): every request and WebSocket event goes on the layer
for ``manage.py runworker``. Importing this module tells the server how to serve such an
object, and to refuse, at startup, a layer no worker process could reach.
"""

from __future__ import annotations

from typing import Any

from switchboard.classic.interface import MOUNTED, ChannelLayerApp, serve_channel_layer
from switchboard.layers import channel_layers
from switchboard.layers.registry import DEFAULT_CHANNEL_LAYER
from switchboard.server.runtime.config import Config
from switchboard.server.runtime.interfaces import register_app_adapter
from switchboard.server.runtime.startup import StartupCheckError, add_startup_check

__all__ = ["ChannelLayerApp", "channel_layers", "get_channel_layer"]


def get_channel_layer(alias: str = DEFAULT_CHANNEL_LAYER) -> ChannelLayerApp:
    """The layer ``alias`` as the interface server serves it; sets Django up, as
    Channels 1's did, so the project's routing and models can be imported."""
    import django

    django.setup(set_prefix=False)
    return ChannelLayerApp(alias)


def _check_layer(config: Config) -> None:
    served = getattr(config.app, "app", None)
    apps = [served] if isinstance(served, ChannelLayerApp) else []
    for served in apps + [app for app in MOUNTED if app not in apps]:
        _check_one(served)


def _check_one(served: ChannelLayerApp) -> None:
    layer = channel_layers.make_backend(served.alias)
    if not layer.spans_processes:
        raise StartupCheckError(
            f"{served!r}: CHANNEL_LAYERS[{served.alias!r}] is {type(layer).__name__}, whose "
            "messages never leave this process, so no `manage.py runworker` could take the "
            "requests: use the Redis layer (switchboard.layers.redis.RedisChannelLayer) or the "
            "IPC layer (switchboard.layers.ipc.IPCChannelLayer), or run `manage.py runserver`, "
            "which runs workers in the same process"
        )


def _adapter(app: Any) -> Any:
    return serve_channel_layer(app)


register_app_adapter(f"{ChannelLayerApp.__module__}.{ChannelLayerApp.__qualname__}", _adapter)
add_startup_check(_check_layer)
