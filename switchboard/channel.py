"""Channels 1's ``channels.channel``: ``Channel`` and ``Group`` (see :mod:`switchboard.classic`)."""

from switchboard.classic.channel import Channel, Group

__all__ = ["Channel", "Group"]
