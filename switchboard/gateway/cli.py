"""``switchboard serve ... --gateway``: the options, and the check that refuses to start.

Given to the server's command line as an extension (``switchboard/cli.py``): the server knows
nothing of gateways; it serves whatever ``app_wrapper`` makes of the application in each
process, here a :class:`~switchboard.gateway.relay.GatewayRelay`.
"""

from __future__ import annotations

import argparse
from typing import Any

from switchboard.gateway.hub import GatewayHub, GatewaySettings, LayerNotShared
from switchboard.gateway.relay import GatewayRelay
from switchboard.layers.base import BaseChannelLayer
from switchboard.layers.registry import DEFAULT_CHANNEL_LAYER, channel_layers
from switchboard.server.runtime.config import Config
from switchboard.server.runtime.startup import StartupCheckError, add_startup_check

__all__ = ["GatewayOption"]

# A new connection's wait for a worker ends this long before the server's handshake timeout,
# so the client gets the gateway's 1013 rather than the server's 500.
HANDSHAKE_MARGIN = 0.25


def _fresh_layer(alias: str) -> BaseChannelLayer | None:
    # Built for the check only: the serving processes build their own after the fork.
    if alias not in channel_layers:
        return None
    return channel_layers.make_backend(alias)


class GatewayOption:
    """The ``--gateway`` options of ``switchboard serve``."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group(
            "gateway mode (WebSocket consumers run in `manage.py runworker --gateway`)"
        )
        d = GatewaySettings()
        group.add_argument(
            "--gateway",
            action="store_true",
            help="hold WebSocket connections here and run their consumers in worker "
            "processes, over the channel layer (IPC or Redis); HTTP is served here as usual",
        )
        group.add_argument(
            "--gateway-layer",
            default=DEFAULT_CHANNEL_LAYER,
            metavar="ALIAS",
            help="the CHANNEL_LAYERS alias gateways and workers meet on (default: %(default)s)",
        )
        group.add_argument(
            "--gateway-wait-timeout",
            type=float,
            default=d.wait_timeout,
            metavar="SECONDS",
            help="a connection waiting this long for a worker (none running, or its worker "
            "gone) is closed with 1013, try again later (default: %(default)s)",
        )
        group.add_argument(
            "--gateway-buffer",
            type=int,
            default=d.buffer_messages,
            metavar="MESSAGES",
            help="client messages kept per connection until its consumer reads them; when "
            "full the socket is not read until the worker catches up (default: %(default)s)",
        )

    def configure(self, options: dict[str, Any]) -> None:
        gateway = options.pop("gateway")
        alias = options.pop("gateway_layer")
        wait = options.pop("gateway_wait_timeout")
        buffer = options.pop("gateway_buffer")
        if not gateway:
            return
        if not wait > 0:
            raise ValueError("--gateway-wait-timeout must be a positive number of seconds")
        if buffer < 1:
            raise ValueError("--gateway-buffer must be at least 1")
        handshake = options.get("ws_handshake_timeout") or 0
        first_wait = handshake - HANDSHAKE_MARGIN if handshake > HANDSHAKE_MARGIN else None
        settings = GatewaySettings(
            layer_alias=alias,
            wait_timeout=wait,
            first_wait_timeout=first_wait,
            buffer_messages=buffer,
        )

        def check_layer(config: Config) -> None:
            try:
                GatewayHub(settings, _fresh_layer).require_shared_layer()
            except LayerNotShared as exc:
                raise StartupCheckError(str(exc)) from None

        add_startup_check(check_layer)
        options["app_wrapper"] = lambda app: GatewayRelay(app, settings)
