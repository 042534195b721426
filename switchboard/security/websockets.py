"""Channels 1's module path for the origin check of ``websocket.connect`` consumers
(``from channels.security.websockets import allowed_hosts_only``); see
:mod:`switchboard.classic.security`. Channels 2's ASGI middleware is in
:mod:`switchboard.security.websocket`."""

from switchboard.classic.security import (
    AllowedHostsOnlyOriginValidator,
    BaseOriginValidator,
    allowed_hosts_only,
)

__all__ = ["AllowedHostsOnlyOriginValidator", "BaseOriginValidator", "allowed_hosts_only"]
