"""Switchboard's ASGI protocol server (HTTP/1.1 + WebSocket + lifespan). No Django here."""

from switchboard.server.asgi.errors import ClientDisconnected
from switchboard.server.runtime.config import Config
from switchboard.server.runtime.server import Server, run

__all__ = ["ClientDisconnected", "Config", "Server", "run"]
