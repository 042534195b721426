"""Data binding: live model changes over WebSockets (see ``switchboard.binding.base``)."""

from switchboard.binding.base import AsyncWebsocketBinding, WebsocketBinding

__all__ = ["AsyncWebsocketBinding", "WebsocketBinding"]
