"""The ``switchboard`` command (``switchboard serve module:attr``, ``python -m switchboard``).

The server (:mod:`switchboard.server`) imports nothing outside itself; this is where it is
given what the parts above it offer: the Prometheus endpoint behind ``--metrics-port``
(:class:`switchboard.metrics.ServerMetrics`), and Django's own ASGI handler served through
the native Django HTTP path (:func:`switchboard.integration.install_server_hooks`).
"""

from __future__ import annotations

from switchboard.integration import install_server_hooks
from switchboard.metrics import ServerMetrics
from switchboard.server.runtime import cli

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    install_server_hooks()
    return cli.main(argv, metrics=ServerMetrics())


if __name__ == "__main__":
    raise SystemExit(main())
