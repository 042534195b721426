"""Builds channel layers from a ``{alias: {"BACKEND": ..., "CONFIG": {...}}}`` mapping.

Where the mapping comes from is injected (:func:`install_config_source`) so this package stays
free of Django: the ``switchboard`` package itself installs a source reading Django's
``CHANNEL_LAYERS`` setting (``switchboard.integration.settings``), lazily, so it works whether
or not the project lists the app in ``INSTALLED_APPS``.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from switchboard.exceptions import InvalidChannelLayerError
from switchboard.layers.base import BaseChannelLayer

ConfigSource = Callable[[], Mapping[str, Any] | None]

DEFAULT_CHANNEL_LAYER = "default"

logger = logging.getLogger("switchboard.layers")

# With no configuration at all, a process gets the embedded in-memory layer...
EMBEDDED_DEFAULT: dict[str, Any] = {
    DEFAULT_CHANNEL_LAYER: {"BACKEND": "switchboard.layers.inmemory.InMemoryChannelLayer"}
}
# ...unless it is one of several serve workers: they would each have a layer of their own and
# silently miss each other's messages, so they share the IPC layer instead.
IPC_DEFAULT: dict[str, Any] = {
    DEFAULT_CHANNEL_LAYER: {"BACKEND": "switchboard.layers.ipc.IPCChannelLayer"}
}
# Set by ``switchboard serve --workers N`` (N > 1) before it forks: the server knows nothing of
# layers, so it only says how many processes serve; the choice of layer is made here.
WORKERS_ENV = "SWITCHBOARD_WORKERS"


REDIS_BACKEND = "switchboard.layers.redis.RedisChannelLayer"
IPC_BACKEND = "switchboard.layers.ipc.IPCChannelLayer"
INMEMORY_BACKEND = "switchboard.layers.inmemory.InMemoryChannelLayer"


def _keep(config: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {key: value for key, value in config.items() if key in names}


_COMMON = ("expiry", "group_expiry", "capacity", "channel_capacity")


def _from_asgi_redis(config: Mapping[str, Any]) -> dict[str, Any]:
    return _keep(config, "hosts", "prefix", "symmetric_encryption_keys", *_COMMON)


def _from_asgi_redis_sentinel(config: Mapping[str, Any]) -> dict[str, Any]:
    services = list(config.get("services") or [])
    if len(services) != 1:
        raise InvalidChannelLayerError(
            "asgi_redis.RedisSentinelChannelLayer: Switchboard's Redis layer follows one "
            f"Sentinel service; CONFIG lists {len(services)} in 'services'"
        )
    translated = _keep(config, "prefix", "symmetric_encryption_keys", *_COMMON)
    translated["sentinels"] = [tuple(host) for host in config.get("hosts") or []]
    translated["service_name"] = services[0]
    return translated


def _from_asgi_ipc(config: Mapping[str, Any]) -> dict[str, Any]:
    # Shared-memory sizes (channel_memory, group_memory) mean nothing to a socket-based layer.
    return _keep(config, "prefix", *_COMMON)


def _from_asgiref_inmemory(config: Mapping[str, Any]) -> dict[str, Any]:
    return _keep(config, *_COMMON)


# Channels 1's backends, as settings of that era name them: built as Switchboard's own layer
# with their CONFIG translated (the system check switchboard.W003 names the new path).
LEGACY_BACKENDS: dict[str, tuple[str, Callable[[Mapping[str, Any]], dict[str, Any]]]] = {
    "asgi_redis.RedisChannelLayer": (REDIS_BACKEND, _from_asgi_redis),
    "asgi_redis.RedisLocalChannelLayer": (REDIS_BACKEND, _from_asgi_redis),
    "asgi_redis.RedisSentinelChannelLayer": (REDIS_BACKEND, _from_asgi_redis_sentinel),
    "asgi_ipc.IPCChannelLayer": (IPC_BACKEND, _from_asgi_ipc),
    "asgiref.inmemory.ChannelLayer": (INMEMORY_BACKEND, _from_asgiref_inmemory),
}


def serving_workers() -> int:
    """How many server worker processes this process is one of (1 when not said)."""
    try:
        return max(1, int(os.environ.get(WORKERS_ENV, "1")))
    except ValueError:
        return 1


def embedded_default() -> dict[str, Any]:
    """The layers used when no configuration is given at all."""
    return IPC_DEFAULT if serving_workers() > 1 else EMBEDDED_DEFAULT


_announced = False


def announce_embedded_default(configs: Mapping[str, Any] | None) -> None:
    """Log, once per process, that the IPC layer was chosen for want of a configuration."""
    global _announced
    if configs is None and serving_workers() > 1 and not _announced:
        _announced = True
        logger.info(
            "No CHANNEL_LAYERS setting and %d server workers: using the IPC channel layer "
            "(switchboard.layers.ipc.IPCChannelLayer) so the workers share channels and groups; "
            "set CHANNEL_LAYERS to choose another",
            serving_workers(),
        )


def _no_configuration() -> Mapping[str, Any] | None:
    return None


_installed_source: ConfigSource = _no_configuration


def install_config_source(source: ConfigSource) -> None:
    """Where managers built without a ``config_source`` read their mapping from (``None``
    from the source means "not configured": the embedded default)."""
    global _installed_source
    _installed_source = source


def installed_config_source() -> Mapping[str, Any] | None:
    return _installed_source()


def import_by_path(path: str) -> Any:
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise InvalidChannelLayerError(f"{path!r} is not a dotted path to a class")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidChannelLayerError(
            f"Cannot import channel layer backend {path!r}: {exc}"
        ) from exc


class ChannelLayerManager:
    """Lazily builds one layer per alias and keeps it for the life of the process."""

    def __init__(self, config_source: ConfigSource | None = None) -> None:
        self.config_source: ConfigSource = config_source or installed_config_source
        self.backends: dict[str, BaseChannelLayer] = {}

    @property
    def configs(self) -> Mapping[str, Any]:
        configs = self.config_source()
        return embedded_default() if configs is None else configs

    def make_backend(self, alias: str) -> BaseChannelLayer:
        try:
            entry = self.configs[alias]
        except KeyError:
            raise InvalidChannelLayerError(
                f"No channel layer named {alias!r} is configured"
            ) from None
        if not isinstance(entry, Mapping) or "BACKEND" not in entry:
            raise InvalidChannelLayerError(f"Channel layer {alias!r} has no BACKEND")
        if entry is IPC_DEFAULT.get(alias):
            announce_embedded_default(None)
        path = entry["BACKEND"]
        config = entry.get("CONFIG", {}) or {}
        legacy = LEGACY_BACKENDS.get(path)
        if legacy is not None:
            path, translate = legacy
            config = translate(config)
        backend = import_by_path(path)
        try:
            return backend(**config)
        except TypeError as exc:
            raise InvalidChannelLayerError(
                f"Cannot build channel layer {alias!r} ({path}): {exc}"
            ) from exc

    def __getitem__(self, alias: str) -> BaseChannelLayer:
        if alias not in self.backends:
            self.backends[alias] = self.make_backend(alias)
        return self.backends[alias]

    def __contains__(self, alias: str) -> bool:
        return alias in self.configs

    def set(self, alias: str, layer: BaseChannelLayer | None) -> BaseChannelLayer | None:
        """Install ``layer`` under ``alias`` (``None`` removes it); returns the old one."""
        old = self.backends.pop(alias, None)
        if layer is not None:
            self.backends[alias] = layer
        return old

    def reset(self) -> None:
        """Forget every built layer (after settings change, e.g. in tests)."""
        self.backends.clear()


channel_layers = ChannelLayerManager()


def get_channel_layer(alias: str = DEFAULT_CHANNEL_LAYER) -> BaseChannelLayer | None:
    """The layer configured under ``alias``, or ``None`` when that alias is not configured."""
    if alias not in channel_layers.backends and alias not in channel_layers:
        return None
    return channel_layers[alias]
