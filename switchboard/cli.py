"""The ``switchboard`` command (``switchboard serve module:attr``, ``python -m switchboard``).

The server (:mod:`switchboard.server`) imports nothing outside itself; this is where it is
given what the parts above it offer: the Prometheus endpoint behind ``--metrics-port``
(:class:`switchboard.metrics.ServerMetrics`), Django's own ASGI handler served through the
native Django HTTP path (:func:`switchboard.integration.install_server_hooks`), and gateway
mode's ``--gateway`` options (:class:`switchboard.gateway.cli.GatewayOption`).
``switchboard publish`` is :mod:`switchboard.streams.cli`.
"""

from __future__ import annotations

import sys

from switchboard.gateway.cli import GatewayOption
from switchboard.gateway.hub import running_hubs
from switchboard.integration import install_server_hooks
from switchboard.metrics import ServerMetrics
from switchboard.server.runtime import cli

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if words[:1] == ["publish"]:  # switchboard.streams.cli: the publish API's client
        from switchboard.streams.cli import main as publish

        return publish(words[1:])
    install_server_hooks()
    metrics = ServerMetrics(gateway_hubs=running_hubs)
    return cli.main(argv, metrics=metrics, extensions=[GatewayOption()])


if __name__ == "__main__":
    raise SystemExit(main())
