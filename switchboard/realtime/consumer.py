"""The consumer speaking the browser protocol: presence and reliable groups on one socket."""

from __future__ import annotations

from switchboard.generic.websocket import AsyncJsonWebsocketConsumer
from switchboard.realtime.history import ReliableMixin
from switchboard.realtime.presence import PresenceMixin

__all__ = ["RealtimeConsumer"]


class RealtimeConsumer(PresenceMixin, ReliableMixin, AsyncJsonWebsocketConsumer):
    """A JSON WebSocket consumer speaking the protocol of :mod:`switchboard.realtime`: set
    ``allowed_topics`` (and ``presence_topics``) in ``connect``, publish with
    :func:`switchboard.realtime.history.publish`."""
