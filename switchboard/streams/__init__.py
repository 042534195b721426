"""Signed streams: server-chosen, tamper-proof subscriptions for browsers.

A view or template signs a stream name into a token (:func:`signed_stream_name`, the
``{% stream_token %}`` tag), optionally bound to one user and with a lifetime; the browser
subscribes with the token, never with the name, so it gets exactly the streams the server
handed it. Server code publishes by name (:func:`publish`, :func:`publish_html`, and their
async twins) from anywhere; subscribers recover what they missed after a reconnect.

* :mod:`~switchboard.streams.tokens`: signing and verifying tokens;
* :mod:`~switchboard.streams.names`: stream names and the layer topic of each;
* :mod:`~switchboard.streams.publishing`: publishing (the history entry's shape is there);
* :mod:`~switchboard.streams.consumer`: :class:`SignedStreamConsumer`, for switchboard.js,
  a bare EventSource and htmx.
"""

from __future__ import annotations

from switchboard.streams.consumer import SignedStreamConsumer
from switchboard.streams.names import (
    InvalidStreamName,
    stream_topic,
    validate_event_name,
    validate_stream_name,
)
from switchboard.streams.publishing import apublish, apublish_html, publish, publish_html
from switchboard.streams.tokens import (
    StreamTokenError,
    signed_stream_name,
    stream_for,
    verify_stream_token,
)

__all__ = [
    "InvalidStreamName",
    "SignedStreamConsumer",
    "StreamTokenError",
    "apublish",
    "apublish_html",
    "publish",
    "publish_html",
    "signed_stream_name",
    "stream_for",
    "stream_topic",
    "validate_event_name",
    "validate_stream_name",
    "verify_stream_token",
]
