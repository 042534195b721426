"""Switchboard: real-time, asynchronous Django.

This package's own module is where the parts are joined: the Django-free channel layers are
told here to read Django's ``CHANNEL_LAYERS`` setting, imported only when first read.
"""

from collections.abc import Mapping
from typing import Any

from switchboard.layers.registry import DEFAULT_CHANNEL_LAYER, install_config_source

__version__ = "0.1.0"

__all__ = ["DEFAULT_CHANNEL_LAYER", "__version__"]


def _django_channel_layers() -> Mapping[str, Any] | None:
    from switchboard.integration.settings import channel_layers_setting

    return channel_layers_setting()


install_config_source(_django_channel_layers)
