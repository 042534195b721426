"""The one encoding every channel layer message goes through, local or remote.

A message is accepted at ``send``/``group_send`` only if a receiving process could decode it:
msgpack with the packer rules below, map keys ``str`` or ``bytes`` (the unpacker refuses other
keys), at most ``max_message_size`` encoded bytes. Checking the same rules in every layer and on
every path (in-memory, a Redis process's own channels, Redis itself) means a message that works
in development works in production, and a bad message fails in the sender's hands rather than
being dropped by each receiver.

Values: ``None``, ``bool``, ``int`` (64 bits), ``float``, ``str``, ``bytes``, lists, tuples
(received as lists) and dicts, nested up to msgpack's depth limit. Anything else (``datetime``,
``set``, model instances) is refused: convert it first.

The in-memory layer uses the encoding as its copy too: encoding once and decoding once per
receiver costs about as much as the shallow copy it replaces for flat messages and far less than
``deepcopy`` for nested ones, and proves the message decodes.
"""

from __future__ import annotations

import threading
from typing import Any

import msgpack

from switchboard.exceptions import MessageTooLarge

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "ChannelMessageTooLarge",
    "MessageCodec",
    "UnserializableMessage",
]

# Twice the server's default WebSocket message limit (1 MiB), so relaying a full-size client
# message with a few fields around it fits, while staying far below what makes Redis cut a
# pub/sub subscriber (client-output-buffer-limit pubsub: 8 MB sustained, 32 MB at once).
DEFAULT_MAX_MESSAGE_SIZE = 2 * 1024 * 1024


class ChannelMessageTooLarge(MessageTooLarge, ValueError):
    """A message encodes to more than the layer's ``max_message_size``; nothing was sent."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"Channel layer message is {size} bytes encoded, over the layer's "
            f"max_message_size of {limit} bytes; nothing was sent"
        )
        self.size = size
        self.limit = limit


class UnserializableMessage(TypeError):
    """A message holds a value the layer cannot carry (see the module docstring)."""


_local = threading.local()


def _packer() -> msgpack.Packer:
    # A Packer reuses its buffer (about 2.5x faster than packb) but is not thread-safe.
    try:
        return _local.packer
    except AttributeError:
        packer = _local.packer = msgpack.Packer(use_bin_type=True, datetime=False)
        return packer


def pack_value(value: Any) -> bytes:
    """Encode a value of the layer's own making (names, expiry times): no checks."""
    return _packer().pack(value)


class MessageCodec:
    """Encodes messages under one ``max_message_size`` (``None``: no limit)."""

    __slots__ = ("max_message_size",)

    def __init__(self, max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if max_message_size is not None and max_message_size < 1:
            raise ValueError("max_message_size must be a positive number of bytes, or None")
        self.max_message_size = max_message_size

    def encode(self, message: dict[str, Any]) -> bytes:
        """The message's bytes; raises unless every receiver could decode them in full."""
        data = self.pack(message)
        self.decode(data)  # proves the keys are ones the receiving unpacker accepts
        return data

    def pack(self, message: dict[str, Any]) -> bytes:
        """Encode and check the size only; pair with a ``decode`` before trusting it."""
        try:
            data = _packer().pack(message)
        except (TypeError, ValueError, OverflowError) as exc:
            raise UnserializableMessage(
                f"Channel layer messages must be msgpack-serializable ({exc}); "
                "convert other values (datetime, set, objects) first"
            ) from exc
        limit = self.max_message_size
        if limit is not None and len(data) > limit:
            raise ChannelMessageTooLarge(len(data), limit)
        return data

    @staticmethod
    def decode(data: bytes) -> dict[str, Any]:
        try:
            return msgpack.unpackb(data, raw=False)
        except (TypeError, ValueError) as exc:
            raise UnserializableMessage(
                f"Channel layer message would not decode at the receiver ({exc}); "
                "dict keys must be str or bytes"
            ) from exc
