"""Wire format of the Redis layer: an envelope ``[target, expires_at, message]`` written in
msgpack (the default) or another registered format, optionally sealed with Fernet (symmetric,
authenticated) on top.

Every payload is written once by the sender and read once by each receiving process, however
many local members it then reaches.

``serializer_format`` picks the format by name, as channels_redis's option does: ``"msgpack"``
and ``"json"`` are built in, and :data:`registry` takes more::

    from switchboard.layers.redis.serializer import BaseMessageSerializer, registry

    class CBORSerializer(BaseMessageSerializer):
        def as_bytes(self, envelope):
            return cbor2.dumps(envelope)

        def from_bytes(self, data):
            return cbor2.loads(data)

    registry.register_serializer("cbor", CBORSerializer)  # then serializer_format="cbor"

Whatever the format, a message must also pass the checks every layer makes (see
:mod:`switchboard.layers.codec`): a format changes how a message travels, not which messages a
site may send, so what works with the in-memory layer in development works here.
"""

from __future__ import annotations

import abc
import base64
import hashlib
import json
from collections.abc import Iterable
from typing import Any

import msgpack

from switchboard.layers.codec import MessageCodec, UnserializableMessage, pack_value

__all__ = [
    "BaseMessageSerializer",
    "JSONSerializer",
    "MsgPackSerializer",
    "SerializerDoesNotExist",
    "SerializerRegistry",
    "registry",
]

# msgpack's header for a 3-element array: an envelope is this, then its three packed items.
_ENVELOPE_HEADER = b"\x93"


def _fernet_key(secret: str | bytes) -> bytes:
    # Any secret becomes a valid Fernet key: SHA-256 gives the 32 bytes Fernet wants.
    raw = secret.encode() if isinstance(secret, str) else secret
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest())


class SerializerDoesNotExist(KeyError, ValueError):
    """No format is registered under that name (a ``KeyError``, as in channels_redis, and a
    ``ValueError``, as any bad ``CONFIG`` value)."""


class BaseMessageSerializer(abc.ABC):
    """A wire format: bytes from an envelope and back.

    ``as_bytes`` gets the envelope ``[target, expires_at, message]``: the channel name (a str)
    or ``None`` for a group message, a float, and the message dict. ``from_bytes`` must give
    back an equal list. Raise ``TypeError`` or ``ValueError`` for a value the format cannot
    write: the sender gets :class:`~switchboard.layers.UnserializableMessage`. The layer makes
    one instance (no arguments) and encrypts on top of these bytes when
    ``symmetric_encryption_keys`` is set.
    """

    @abc.abstractmethod
    def as_bytes(self, envelope: list[Any]) -> bytes: ...

    @abc.abstractmethod
    def from_bytes(self, data: bytes) -> list[Any]: ...


class MsgPackSerializer(BaseMessageSerializer):
    """The default. The layer writes this format itself around the message bytes its codec has
    already made and checked, so a message is encoded once."""

    def as_bytes(self, envelope: list[Any]) -> bytes:
        return msgpack.packb(envelope, use_bin_type=True, datetime=False)

    def from_bytes(self, data: bytes) -> list[Any]:
        return msgpack.unpackb(data, raw=False)


class JSONSerializer(BaseMessageSerializer):
    """UTF-8 JSON, readable by any language. JSON has no bytes, so a message holding a bytes
    value (or bytes dict key) is refused at send; tuples arrive as lists, as with msgpack."""

    def as_bytes(self, envelope: list[Any]) -> bytes:
        return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()

    def from_bytes(self, data: bytes) -> list[Any]:
        return json.loads(data)


class SerializerRegistry:
    """Formats by name, for ``serializer_format``."""

    def __init__(self) -> None:
        self._formats: dict[str, type[BaseMessageSerializer]] = {}

    def register_serializer(self, format: str, serializer_class: type[Any]) -> None:
        """Make ``serializer_format=format`` use ``serializer_class``: a class, built with no
        arguments, whose instances have ``as_bytes`` and ``from_bytes`` (see
        :class:`BaseMessageSerializer`). Registering a name again replaces the format."""
        if not isinstance(serializer_class, type) or not all(
            callable(getattr(serializer_class, m, None)) for m in ("as_bytes", "from_bytes")
        ):
            raise TypeError(
                "serializer_class must be a class with as_bytes() and from_bytes() "
                "(subclass switchboard.layers.redis.serializer.BaseMessageSerializer)"
            )
        self._formats[format] = serializer_class

    def get_serializer(self, format: str) -> BaseMessageSerializer:
        """A new instance of the format registered as ``format``."""
        try:
            serializer_class = self._formats[format]
        except KeyError:
            known = ", ".join(repr(name) for name in sorted(self._formats))
            raise SerializerDoesNotExist(
                f"No serializer_format {format!r} is registered (known: {known})"
            ) from None
        return serializer_class()


registry = SerializerRegistry()
registry.register_serializer("msgpack", MsgPackSerializer)
registry.register_serializer("json", JSONSerializer)


class Serializer:
    """Packs ``[target, expires_at, message]`` envelopes in one format.

    ``symmetric_encryption_keys``: the first key encrypts, every key may decrypt
    (MultiFernet), so keys can be rotated by prepending a new one.
    """

    def __init__(
        self,
        symmetric_encryption_keys: Iterable[str | bytes] | None = None,
        serializer_format: str = "msgpack",
    ) -> None:
        chosen = registry.get_serializer(serializer_format)
        self.format_name = serializer_format
        # None: the built-in msgpack, written around the codec's bytes (no second encoding).
        self._format = None if type(chosen) is MsgPackSerializer else chosen
        keys = list(symmetric_encryption_keys or [])
        self._crypter = None
        if keys:
            try:
                from cryptography.fernet import Fernet, MultiFernet
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise ValueError(
                    "symmetric_encryption_keys needs the 'cryptography' package "
                    "(pip install switchboard[crypto])"
                ) from exc
            self._crypter = MultiFernet([Fernet(_fernet_key(k)) for k in keys])

    @property
    def encrypted(self) -> bool:
        return self._crypter is not None

    def _write(self, envelope: list[Any]) -> bytes:
        assert self._format is not None
        try:
            return self._format.as_bytes(envelope)
        except (TypeError, ValueError, OverflowError) as exc:
            raise UnserializableMessage(
                f"Channel layer message cannot be written as serializer_format "
                f"{self.format_name!r} ({exc}); convert the value first"
            ) from exc

    def dumps(self, envelope: Any) -> bytes:
        data = (
            msgpack.packb(envelope, use_bin_type=True)
            if self._format is None
            else self._write(list(envelope))
        )
        if self._crypter is not None:
            data = self._crypter.encrypt(data)
        return data

    def seal(self, target: str | None, expires: float, message_data: bytes) -> bytes:
        """The msgpack envelope around an already encoded (and checked) message: the same bytes
        as ``dumps([target, expires, message])`` without encoding the message a second time."""
        data = _ENVELOPE_HEADER + pack_value(target) + pack_value(expires) + message_data
        if self._crypter is not None:
            data = self._crypter.encrypt(data)
        return data

    def pack(
        self,
        codec: MessageCodec,
        target: str | None,
        expires: float,
        message: dict[str, Any],
        checked: bool = True,
    ) -> bytes:
        """The payload carrying ``message``. ``checked``: raise UnserializableMessage or
        ChannelMessageTooLarge unless every layer could carry it and every receiver read it
        (``False`` for a message this layer received itself)."""
        if self._format is None:
            return self.seal(
                target, expires, codec.encode(message) if checked else codec.pack(message)
            )
        if checked:
            codec.encode(message)  # the rules of every layer, whatever the format
        data = self._write([target, expires, message])
        if self._crypter is not None:
            data = self._crypter.encrypt(data)
        return data

    def copy(self, codec: MessageCodec, message: dict[str, Any]) -> dict[str, Any]:
        """What a receiver in another process would get, for a channel of this process: the
        same checks as :meth:`pack`, and a dict of its own."""
        if self._format is None:
            return codec.decode(codec.pack(message))
        codec.encode(message)
        return self._format.from_bytes(self._write([None, 0.0, message]))[2]

    def loads(self, data: bytes) -> Any:
        if self._crypter is not None:
            data = self._crypter.decrypt(data)
        if self._format is None:
            return msgpack.unpackb(data, raw=False)
        return self._format.from_bytes(data)
