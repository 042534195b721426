"""Channels 1's origin check for ``websocket.connect`` consumers: ``allowed_hosts_only``.

A class used as a decorator, as Channels 1 had it: ``BaseOriginValidator`` reads the connect
message's Origin header and asks ``validate_origin(message, origin)``; a subclass says yes or
no. A connect without an Origin (or with one that is not ASCII) is refused before that. A
refused connect gets ``{"close": True}`` on its reply channel (the socket is rejected with
403) and the consumer does not run. Messages without headers (``websocket.receive``,
``websocket.disconnect``) pass unchecked: only the handshake has an Origin.

:class:`AllowedHostsOnlyOriginValidator` (``allowed_hosts_only``) allows the origins whose
host is in ``ALLOWED_HOSTS`` (read at each connect; with ``DEBUG`` and no ``ALLOWED_HOSTS``,
the local forms Django allows), matched as Switchboard's ASGI origin check matches them
(:mod:`switchboard.security.websocket`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from switchboard.security.websocket import AllowedHostsOriginValidator

__all__ = ["AllowedHostsOnlyOriginValidator", "BaseOriginValidator", "allowed_hosts_only"]


async def _never_called(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
    raise RuntimeError("only the origin check of this validator is used")


class BaseOriginValidator:
    """Decorates a connect consumer; subclasses implement :meth:`validate_origin`."""

    def __init__(self, func: Callable[..., Any]) -> None:
        functools.update_wrapper(self, func)
        self.func = func

    def __call__(self, message: Any, *args: Any, **kwargs: Any) -> Any:
        headers = message.content.get("headers")
        if headers is None:
            return self.func(message, *args, **kwargs)
        origin = self.get_origin(message)
        if origin is None or not self.validate_origin(message, origin):
            self.reject(message)
            return None
        return self.func(message, *args, **kwargs)

    def get_header(self, message: Any, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower case) in the message, or None."""
        for header in message.content.get("headers") or ():
            if len(header) < 2:
                continue
            key = header[0].encode("latin-1") if isinstance(header[0], str) else header[0]
            if bytes(key).lower() == name:
                value = header[1]
                return value.encode("latin-1") if isinstance(value, str) else bytes(value)
        return None

    def get_origin(self, message: Any) -> str | None:
        """The Origin of the connect message; None if it has none or it is not ASCII."""
        raw = self.get_header(message, b"origin")
        if not raw:
            return None
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            return None

    def validate_origin(self, message: Any, origin: str) -> bool:
        """Whether ``origin`` may connect: subclasses decide."""
        raise NotImplementedError("Origin validators implement validate_origin(message, origin)")

    def reject(self, message: Any) -> None:
        """Refuses the connection: ``{"close": True}`` on the reply channel, sent (as the
        consumer's sends are) when the consumer call returns."""
        if message.reply_channel is not None:
            message.reply_channel.send({"close": True})


class AllowedHostsOnlyOriginValidator(BaseOriginValidator):
    """Allows origins whose host is in ``settings.ALLOWED_HOSTS``."""

    def __init__(self, func: Callable[..., Any]) -> None:
        super().__init__(func)
        # The ASGI check's matching, fed from ALLOWED_HOSTS as they are at each connect.
        self._check = AllowedHostsOriginValidator(_never_called)

    def validate_origin(self, message: Any, origin: str) -> bool:
        return self._check.valid_origin(origin)


allowed_hosts_only = AllowedHostsOnlyOriginValidator
