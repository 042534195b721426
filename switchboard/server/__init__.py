"""Switchboard's ASGI protocol server (HTTP/1.1, HTTP/2, WebSocket, lifespan). No Django here,
nor anything else of Switchboard: what the layers above add is passed in as hooks.

By role: ``asgi/`` (the ASGI side: message types, the HTTP and WebSocket cycles, lifespan),
``wire/`` (wire formats without I/O), ``connections/`` (the asyncio protocols), ``wsgi/`` (WSGI
applications in a thread pool) and ``runtime/`` (settings, command line, serving loop,
supervisor, TLS, logging, health endpoints, the hooks).
"""

from switchboard.server.asgi.errors import ClientDisconnected
from switchboard.server.runtime.config import Config
from switchboard.server.runtime.logging_setup import JsonFormatter
from switchboard.server.runtime.server import Server, run

# JsonFormatter is named in projects' LOGGING settings: its public path is the package's, not
# the room's it happens to live in.
__all__ = ["ClientDisconnected", "Config", "JsonFormatter", "Server", "run"]
