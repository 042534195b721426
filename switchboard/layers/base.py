"""The channel layer contract every backend implements, with its shared validation rules.

This package knows nothing of Django or of the protocol server.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import warnings
from collections.abc import Iterable
from typing import Any

from switchboard.exceptions import ChannelFull
from switchboard.layers.codec import DEFAULT_MAX_MESSAGE_SIZE, MessageCodec
from switchboard.layers.drops import DropCounter
from switchboard.layers.stats import LayerStats

__all__ = ["BaseChannelLayer", "ChannelFull"]

# Same limits and alphabet Channels documents, so names valid there stay valid here.
MAX_NAME_LENGTH = 100
_CHANNEL_NAME = re.compile(r"^[a-zA-Z0-9\-_.]+(![a-zA-Z0-9\-_.]*)?$")
_GROUP_NAME = re.compile(r"^[a-zA-Z0-9\-_.]+$")


class BaseChannelLayer:
    """Shared configuration and validation; subclasses implement the coroutines.

    ``expiry``: seconds a message waits in a channel before it is dropped.
    ``capacity``: default maximum number of messages waiting in one channel.
    ``channel_capacity``: ``{pattern: capacity}`` overrides; patterns are globs
    (``"http.request"``, ``"websocket.send*"``) or compiled regular expressions.
    ``group_expiry``: seconds a group membership lives without being renewed.
    ``max_message_size``: most bytes a message may encode to (msgpack), checked at send time
    (:class:`~switchboard.layers.codec.ChannelMessageTooLarge`); ``None`` for no limit.
    Default 2 MiB: see :mod:`switchboard.layers.codec`, which also says what a message may hold.
    """

    # What a layer offers beyond send/receive/new_channel, by name (Channels' convention,
    # extended): "groups", "flush", and Switchboard's "presence" (``presence_store()``),
    # "history" (``history_store()``) and "receive_future" (``receive_future(channel)``, a
    # future for the next message, awaited without a task of its own).
    extensions: tuple[str, ...] = ("groups", "flush")
    # Whether a message can reach another process (False for the in-memory layer): gateway
    # mode needs one that does, and says so at startup.
    spans_processes: bool = True

    def __init__(
        self,
        expiry: float = 60,
        capacity: int = 100,
        channel_capacity: dict[Any, int] | None = None,
        group_expiry: float = 86400,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.expiry = expiry
        self.capacity = capacity
        self.group_expiry = group_expiry
        self.channel_capacity = self._compile_capacities(channel_capacity or {})
        self.codec = MessageCodec(max_message_size)
        # Messages dropped where no sender can be told: counted, logged rate-limited.
        self.drops = DropCounter(logging.getLogger(type(self).__module__))
        self.stats = LayerStats()  # counters read by switchboard.metrics

    def queued_messages(self) -> int:
        """Messages waiting in this process's local queues (a metrics gauge; may be called
        from another thread, so implementations copy before they iterate)."""
        return 0

    @property
    def max_message_size(self) -> int | None:
        return self.codec.max_message_size

    @staticmethod
    def _compile_capacities(spec: dict[Any, int]) -> list[tuple[re.Pattern[str], int]]:
        compiled = []
        for pattern, cap in spec.items():
            if isinstance(pattern, re.Pattern):
                compiled.append((pattern, cap))
            else:
                compiled.append((re.compile(fnmatch.translate(pattern)), cap))
        return compiled

    def add_capacity_default(self, pattern: str, capacity: int) -> None:
        """Channels matching ``pattern`` (fnmatch) get ``capacity`` unless an override from
        the configuration matches them first (Switchboard's own busy channels: a gateway's)."""
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.channel_capacity.extend(self._compile_capacities({pattern: capacity}))

    def get_capacity(self, channel: str) -> int:
        """Capacity of ``channel``: the first matching override, else the default."""
        for pattern, cap in self.channel_capacity:
            if pattern.match(channel):
                return cap
        return self.capacity

    # -- validation -------------------------------------------------------

    @staticmethod
    def require_valid_channel_name(name: Any, receive: bool = False) -> bool:
        """Raise TypeError unless ``name`` is a legal channel name."""
        if not isinstance(name, str):
            raise TypeError(f"Channel name must be a str, not {type(name).__name__}")
        if len(name) >= MAX_NAME_LENGTH or not _CHANNEL_NAME.fullmatch(name):
            raise TypeError(
                f"Channel name {name!r} is invalid: use ASCII letters, digits, hyphens, "
                f"underscores or periods, at most one '!', under {MAX_NAME_LENGTH} characters"
            )
        return True

    @staticmethod
    def require_valid_group_name(name: Any) -> bool:
        if not isinstance(name, str):
            raise TypeError(f"Group name must be a str, not {type(name).__name__}")
        if len(name) >= MAX_NAME_LENGTH or not _GROUP_NAME.fullmatch(name):
            raise TypeError(
                f"Group name {name!r} is invalid: use ASCII letters, digits, hyphens, "
                f"underscores or periods, under {MAX_NAME_LENGTH} characters"
            )
        return True

    @staticmethod
    def require_valid_message(message: Any) -> None:
        """A message is a dict. Like Channels' layers, a dict without ``"type"`` is carried
        (only a consumer dispatching it needs one); a ``"type"`` that is there must be a str,
        as no handler could be named by anything else."""
        if not isinstance(message, dict):
            raise TypeError(f"Message must be a dict, not {type(message).__name__}")
        if "type" in message and not isinstance(message["type"], str):
            raise TypeError("A message's 'type' must be a str")

    def valid_channel_names(self, names: Iterable[str], receive: bool = False) -> bool:
        for name in names:
            self.require_valid_channel_name(name, receive=receive)
        return True

    # Channels 4.2.1 renamed these to require_valid_*; 4.2.2 brought the old names back as
    # deprecated aliases, which channel layers written for older Channels still call.
    def valid_channel_name(self, name: Any, receive: bool = False) -> bool:
        """Deprecated alias of :meth:`require_valid_channel_name`."""
        warnings.warn(
            "valid_channel_name is deprecated: call require_valid_channel_name",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.require_valid_channel_name(name, receive=receive)

    def valid_group_name(self, name: Any) -> bool:
        """Deprecated alias of :meth:`require_valid_group_name`."""
        warnings.warn(
            "valid_group_name is deprecated: call require_valid_group_name",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.require_valid_group_name(name)

    # -- the API ----------------------------------------------------------

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        raise NotImplementedError

    async def receive(self, channel: str) -> dict[str, Any]:
        raise NotImplementedError

    async def new_channel(self, prefix: str = "specific") -> str:
        raise NotImplementedError

    async def group_add(self, group: str, channel: str) -> None:
        raise NotImplementedError

    async def group_discard(self, group: str, channel: str) -> None:
        raise NotImplementedError

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        raise NotImplementedError

    async def release_channel(self, channel: str) -> None:
        """``channel`` is gone for good (its consumer ended): drop it from every group it
        joined through this layer and discard what waits for it.

        The consumer machinery calls this whenever a consumer ends (returns, raises or is
        cancelled), so it must be cheap. Layers that keep no per-channel state need not
        override it.
        """

    async def flush(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Release connections and tasks; the layer may be used again afterwards."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} capacity={self.capacity} expiry={self.expiry}>"
