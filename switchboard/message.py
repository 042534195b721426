"""Channels 1's ``channels.message``: ``Message`` (see :mod:`switchboard.classic`)."""

from switchboard.classic.message import Message

__all__ = ["Message"]
