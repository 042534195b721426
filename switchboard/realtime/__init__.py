"""Presence and reliable groups for browsers: :class:`RealtimeConsumer` and its wire protocol.

The package holds one feature: the control frames (:mod:`switchboard.realtime.frames`),
presence (:mod:`switchboard.realtime.presence`), reliable groups with history and recovery
(:mod:`switchboard.realtime.history`) and the consumer joining them
(:mod:`switchboard.realtime.consumer`). The stores behind presence and history are the
channel layer's (``switchboard.layers``).

``switchboard/static/switchboard/switchboard.js`` speaks this protocol. Every frame is a
WebSocket text frame holding one JSON object. Control frames have a string ``"sb"`` member;
every other object is application data, handed to ``receive_json`` unchanged (and a
demultiplexer's ``{"stream": name, "payload": ...}`` frames are such data).

Client to server:

``{"sb": "sub", "topic": T, "history": N}``
    Subscribe to the reliable group ``T``; ``history`` (optional): also send its last ``N``
    publications.
``{"sb": "sub", "topic": T, "epoch": E, "offset": O}``
    Subscribe again after a reconnect, recovering every publication after offset ``O`` of
    epoch ``E`` (``history`` is still honoured when recovery fails).
``{"sb": "unsub", "topic": T}``
    Stop receiving ``T``; answered by ``{"sb": "unsubscribed", "topic": T}``.
``{"sb": "presence", "topic": T}`` / ``{"sb": "presence_off", "topic": T}``
    Watch (or stop watching) who is in ``T``.

Server to client:

``{"sb": "subscribed", "topic": T, "epoch": E, "offset": O, "recovered": bool}``
    The subscription is live. The ``pub`` frames that follow (replayed history) start right
    after offset ``O``. ``recovered`` is present only when the client asked to recover:
    ``true``, the replay is exactly what was missed; ``false``, the history no longer covers
    the gap (or the epoch changed): the client must resynchronise its state (the frames that
    follow are then the requested ``history``).
``{"sb": "pub", "topic": T, "epoch": E, "offset": O, "data": {...}}``
    A publication. Within one epoch offsets arrive strictly increasing by one.
``{"sb": "resync", "topic": T, "epoch": E, "offset": O}``
    Publications were lost and cannot be recovered (history trimmed, or its data lost and a
    new epoch begun): resynchronise; live publications continue after offset ``O``.
``{"sb": "presence_state", "topic": T, "state": {key: {"metas": [meta, ...]}}}``
    Everyone in ``T`` now (one meta per connection, each with a ``ref``).
``{"sb": "presence_diff", "topic": T, "joins": {...}, "leaves": {...}}``
    Changes, same shape; apply by ``ref`` (a repeated join or leave changes nothing).
``{"sb": "error", "error": text, "topic": T}``
    A refused or malformed frame (``topic`` when one applies).

A client remembers, per topic, the epoch and the offset of the last ``pub`` it handled and
sends them with ``sub`` on every reconnect. The server publishes with
:func:`switchboard.realtime.history.publish`.
"""

from __future__ import annotations

from switchboard.realtime.consumer import RealtimeConsumer
from switchboard.realtime.history import ReliableMixin, publish
from switchboard.realtime.presence import PresenceMixin

__all__ = ["PresenceMixin", "RealtimeConsumer", "ReliableMixin", "publish"]
