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

    # Gateway mode: its subscriptions and presence come from the client's frames, which a
    # resumed connect cannot rebuild from the scope; closed with 1012 instead, switchboard.js
    # reconnects and recovers what it missed from the history.
    movable = False
