"""The IPC layer's frames: what travels on its Unix sockets, apart from any I/O.

A frame is one msgpack array ``[kind, ...]``. msgpack is self-delimiting, so frames follow each
other on a stream with no length prefix, and a reader decodes whole frames out of whatever
chunks the socket gives it (:class:`FrameReader`). A message inside a frame is the exact bytes
the layer's codec produced and checked at send time, spliced in without encoding it again.

Data frames (any process to any process, and the hub's mailboxes to their receivers)::

    [MSG, channel, expires_at, message]      one channel's message
    [GROUP, group, expires_at, message]      a group message: the receiver fans it out locally

Control frames (a process and the hub, see hub.py)::

    -> [HELLO, seq, token, pid, groups, receivers, presence]   (re)join: these are all of
                                   mine (presence: [[topic, ref, key, meta], ...])
    -> [JOIN, seq, group]          first local member of group
    -> [LEAVE, group]              last local member gone
    -> [RECEIVE, seq, channel]     this process reads worker channel ``channel``
    -> [PARK, seq, channel, capacity, expires_at, message]   hold it until somebody receives
                                   it (within the sender's capacity for that channel)
    -> [ACK, bseq]                 replica updated (answers UPDATE)
    -> [FLUSH, seq]                drop every parked message and all history
    -> [TRACK, seq, topic, ref, key, meta] / [UNTRACK, seq, topic, ref]   presence (presence.py)
    -> [APPEND, seq, topic, data, size, ttl]   history (history.py); data: the codec's bytes
    -> [RECOVER, seq, topic, epoch, offset, limit] / [LATEST, seq, topic, limit]
    <- [OK, seq] / [FULL, seq]     answers
    <- [UPDATE, bseq, token, groups, receivers, replace]   replica change for one process
    <- [LEFT, token, group]        that process has no member in group any more
    <- [GONE, token]               that process left
    <- [SETTLED, channel, count]   parked messages of yours were handed over or expired
    <- [RETIRING]                  the hub is closing normally (its event loop or layer ends)
    <- [TRACKED, bseq, token, topic, ref, key, meta] / [UNTRACKED, bseq, topic, ref]
                                   presence replica change (ACKed like UPDATE)
    <- [PRESENCE, bseq, token, entries]   every presence entry of one process (replaces)
    <- [REPLY, seq, payload]       answers a history request
"""

from __future__ import annotations

from typing import Any

import msgpack

from switchboard.layers.codec import pack_value

__all__ = ["FrameReader", "HubLost", "ProtocolError", "control", "group_frame", "msg_frame"]

# Data
MSG = 0
GROUP = 1
# Process -> hub
HELLO = 10
JOIN = 11
LEAVE = 12
RECEIVE = 13
PARK = 14
ACK = 15
FLUSH = 16
# Hub -> process
OK = 20
FULL = 21
UPDATE = 22
GONE = 23
SETTLED = 24
LEFT = 25
RETIRING = 26
# Presence and history (process -> hub)
TRACK = 30
UNTRACK = 31
APPEND = 32
RECOVER = 33
LATEST = 34
# Presence and history (hub -> process)
TRACKED = 40
UNTRACKED = 41
PRESENCE = 42
REPLY = 43

_ARRAY4 = b"\x94"
_MSG = _ARRAY4 + pack_value(MSG)
_GROUP = _ARRAY4 + pack_value(GROUP)


def msg_frame(channel: str, expires: float, message_data: bytes) -> bytes:
    """``message_data``: the codec's bytes for the message (already checked)."""
    return b"".join((_MSG, pack_value(channel), pack_value(expires), message_data))


def group_frame(group: str, expires: float, message_data: bytes) -> bytes:
    return b"".join((_GROUP, pack_value(group), pack_value(expires), message_data))


def park_frame(seq: int, channel: str, capacity: int, expires: float, message_data: bytes) -> bytes:
    return b"".join(
        (
            b"\x96",
            pack_value(PARK),
            pack_value(seq),
            pack_value(channel),
            pack_value(capacity),
            pack_value(expires),
            message_data,
        )
    )


def control(*items: Any) -> bytes:
    """A control frame; its items are the layer's own (names, numbers, lists of names)."""
    return msgpack.packb(items, use_bin_type=True)


class ProtocolError(ValueError):
    """The peer sent something that is not a frame: the connection is closed."""


class HubLost(ConnectionError):
    """The hub connection ended before the answer to a request that must be asked again."""


class FrameReader:
    """Decodes frames from a byte stream fed in arbitrary chunks."""

    __slots__ = ("_unpacker",)

    def __init__(self, max_frame: int | None = None) -> None:
        # Room for a partial frame (a message plus a few short fields) and the next chunk the
        # socket hands over; past that bound the peer is broken.
        limit = 2**31 - 1 if max_frame is None else 2 * max_frame + (1 << 20)
        self._unpacker = msgpack.Unpacker(raw=False, max_buffer_size=limit)

    def feed(self, data: bytes) -> list[list[Any]]:
        unpacker = self._unpacker
        try:
            unpacker.feed(data)
            frames = list(unpacker)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise ProtocolError(f"undecodable frame: {exc!r}") from exc
        for frame in frames:
            if type(frame) is not list or not frame or type(frame[0]) is not int:
                raise ProtocolError(f"not a frame: {frame!r:.80}")
        return frames
