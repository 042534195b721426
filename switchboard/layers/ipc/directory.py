"""Who is where, for the IPC layer: pure tables, no I/O.

:class:`ProcessTable` maps each process (its token) to the groups it has members in and the
worker channels it receives. The hub holds the authoritative one; every process keeps a replica
from the hub's updates, so ``send``/``group_send`` find their targets without asking anyone.
Each process is the source of truth for its own entries: it announces them again to any new hub.

:class:`Mailboxes` holds, in the hub, messages for channels nobody receives yet (a worker channel
before its first ``runworker``, a process channel whose process is between event loops), within
the layer's capacity and expiry, remembering who sent each so the sender can be told what became
of it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["Mailboxes", "ProcessTable"]


class ProcessTable:
    """``groups``: group -> tokens with members in it; ``receivers``: worker channel -> tokens
    receiving it (a list, in registration order, for round-robin)."""

    __slots__ = ("_of", "groups", "receivers")

    def __init__(self) -> None:
        self.groups: dict[str, set[str]] = {}
        self.receivers: dict[str, list[str]] = {}
        self._of: dict[str, tuple[set[str], set[str]]] = {}

    def __contains__(self, token: object) -> bool:
        return token in self._of

    def tokens(self) -> list[str]:
        return list(self._of)

    def of(self, token: str) -> tuple[set[str], set[str]]:
        """(groups, receivers) of ``token``; empty sets for an unknown one."""
        entry = self._of.get(token)
        return (set(entry[0]), set(entry[1])) if entry else (set(), set())

    def _entry(self, token: str) -> tuple[set[str], set[str]]:
        entry = self._of.get(token)
        if entry is None:
            entry = self._of[token] = (set(), set())
        return entry

    def add(self, token: str, groups: Iterable[str] = (), receivers: Iterable[str] = ()) -> None:
        own_groups, own_receivers = self._entry(token)
        for group in groups:
            if group not in own_groups:
                own_groups.add(group)
                self.groups.setdefault(group, set()).add(token)
        for channel in receivers:
            if channel not in own_receivers:
                own_receivers.add(channel)
                self.receivers.setdefault(channel, []).append(token)

    def set(self, token: str, groups: Iterable[str], receivers: Iterable[str]) -> None:
        """Replace everything known of ``token`` (a process announcing itself)."""
        self.remove(token)
        self.add(token, groups, receivers)

    def leave(self, token: str, group: str) -> None:
        entry = self._of.get(token)
        if entry is None or group not in entry[0]:
            return
        entry[0].discard(group)
        tokens = self.groups.get(group)
        if tokens is not None:
            tokens.discard(token)
            if not tokens:
                del self.groups[group]

    def remove(self, token: str) -> None:
        entry = self._of.pop(token, None)
        if entry is None:
            return
        for group in entry[0]:
            tokens = self.groups.get(group)
            if tokens is not None:
                tokens.discard(token)
                if not tokens:
                    del self.groups[group]
        for channel in entry[1]:
            tokens_list = self.receivers.get(channel)
            if tokens_list is not None and token in tokens_list:
                tokens_list.remove(token)
                if not tokens_list:
                    del self.receivers[channel]

    def clear(self) -> None:
        self.groups.clear()
        self.receivers.clear()
        self._of.clear()


# A parked message: (expires_at, message, sender token)
Parked = tuple[float, Any, str]


class Mailboxes:
    """Parked messages by channel, each box bounded by the capacity its sender gives (the
    senders' layer configuration, which the hub's process need not share)."""

    __slots__ = ("boxes",)

    def __init__(self) -> None:
        self.boxes: dict[str, deque[Parked]] = {}

    def park(self, channel: str, capacity: int, expires: float, message: Any, sender: str) -> bool:
        """False when the box holds ``capacity`` messages (nothing stored)."""
        box = self.boxes.get(channel)
        if box is None:
            box = self.boxes[channel] = deque()
        if len(box) >= capacity:
            return False
        box.append((expires, message, sender))
        return True

    def take(self, match: Callable[[str], bool]) -> list[tuple[str, list[Parked]]]:
        """Remove and return the boxes whose channel ``match`` accepts."""
        taken = [(channel, list(box)) for channel, box in self.boxes.items() if match(channel)]
        for channel, _ in taken:
            del self.boxes[channel]
        return taken

    def expire(self, now: float) -> list[tuple[str, list[Parked]]]:
        """Remove and return expired messages, by channel (oldest expire first)."""
        expired = []
        for channel, box in list(self.boxes.items()):
            gone = []
            while box and box[0][0] <= now:
                gone.append(box.popleft())
            if gone:
                expired.append((channel, gone))
            if not box:
                del self.boxes[channel]
        return expired

    def clear(self) -> list[tuple[str, list[Parked]]]:
        cleared = list((channel, list(box)) for channel, box in self.boxes.items())
        self.boxes.clear()
        return cleared
