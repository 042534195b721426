"""Drive ASGI applications in tests without a server."""

from switchboard.testing.application import ApplicationCommunicator
from switchboard.testing.http import HttpCommunicator
from switchboard.testing.websocket import WebsocketCommunicator

__all__ = ["ApplicationCommunicator", "HttpCommunicator", "WebsocketCommunicator"]
