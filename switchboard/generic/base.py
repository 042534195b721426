"""Channels 1's ``channels.generic.base``: ``BaseConsumer``, the class-based consumer of
named channels (see :mod:`switchboard.classic.generic`)."""

from switchboard.classic.generic import BaseConsumer

__all__ = ["BaseConsumer"]
