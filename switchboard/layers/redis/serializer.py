"""Wire format: msgpack, optionally sealed with Fernet (symmetric, authenticated).

Every payload is packed once by the sender and unpacked once by each receiving
process, however many local members it then reaches.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from typing import Any

import msgpack

from switchboard.layers.codec import pack_value

# msgpack's header for a 3-element array: an envelope is this, then its three packed items.
_ENVELOPE_HEADER = b"\x93"


def _fernet_key(secret: str | bytes) -> bytes:
    # Any secret becomes a valid Fernet key: SHA-256 gives the 32 bytes Fernet wants.
    raw = secret.encode() if isinstance(secret, str) else secret
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest())


class Serializer:
    """Packs ``[target, expires_at, message]`` envelopes.

    ``symmetric_encryption_keys``: the first key encrypts, every key may decrypt
    (MultiFernet), so keys can be rotated by prepending a new one.
    """

    def __init__(self, symmetric_encryption_keys: Iterable[str | bytes] | None = None) -> None:
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

    def dumps(self, envelope: Any) -> bytes:
        data = msgpack.packb(envelope, use_bin_type=True)
        if self._crypter is not None:
            data = self._crypter.encrypt(data)
        return data

    def seal(self, target: str | None, expires: float, message_data: bytes) -> bytes:
        """The envelope around an already encoded (and checked) message: the same bytes as
        ``dumps([target, expires, message])`` without encoding the message a second time."""
        data = _ENVELOPE_HEADER + pack_value(target) + pack_value(expires) + message_data
        if self._crypter is not None:
            data = self._crypter.encrypt(data)
        return data

    def loads(self, data: bytes) -> Any:
        if self._crypter is not None:
            data = self._crypter.decrypt(data)
        return msgpack.unpackb(data, raw=False)
