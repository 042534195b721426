"""Switchboard: real-time, asynchronous Django."""

__version__ = "0.1.0"

DEFAULT_CHANNEL_LAYER = "default"
