"""Switchboard's ASGI protocol server (HTTP/1.1 + WebSocket + lifespan). No Django here."""

from switchboard.server.config import Config
from switchboard.server.errors import ClientDisconnected
from switchboard.server.server import Server, run

__all__ = ["ClientDisconnected", "Config", "Server", "run"]
