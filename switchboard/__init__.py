"""Switchboard: real-time, asynchronous Django.

This package's own module is where the parts are joined: the Django-free channel layers are
told here to read Django's ``CHANNEL_LAYERS`` setting, imported only when first read.
"""

from collections.abc import Mapping
from typing import Any

from switchboard.layers.registry import DEFAULT_CHANNEL_LAYER, install_config_source

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_CHANNEL_LAYER",
    "Channel",
    "Group",
    "__version__",
    "channel_layers",
    "include",
    "route",
    "route_class",
]

# Channels 1's top-level names (``from channels import Channel, Group, route``), imported on
# first use so that ``import switchboard`` stays light.
_CHANNELS_1 = {
    "Channel": "switchboard.classic.channel",
    "Group": "switchboard.classic.channel",
    "route": "switchboard.classic.routing",
    "route_class": "switchboard.classic.routing",
    "include": "switchboard.classic.routing",
    "channel_layers": "switchboard.layers",
}


def __getattr__(name: str) -> Any:
    module = _CHANNELS_1.get(name)
    if module is None:
        raise AttributeError(f"module 'switchboard' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def _django_channel_layers() -> Mapping[str, Any] | None:
    from switchboard.integration.settings import channel_layers_setting

    return channel_layers_setting()


install_config_source(_django_channel_layers)
