"""Group membership kept in this process only.

Redis never stores who is in a group: each process subscribes once per group it
has members in and fans a group message out to its own members. So a process
that dies leaves nothing behind, and a Redis restart loses no membership.
"""

from __future__ import annotations

import time


class LocalGroups:
    """``{group: {channel: expires_at}}`` with expiry enforced on read."""

    def __init__(self, group_expiry: float) -> None:
        self.group_expiry = group_expiry
        self._groups: dict[str, dict[str, float]] = {}

    def add(self, group: str, channel: str) -> bool:
        """Add or renew; True when this is the group's first local member."""
        members = self._groups.get(group)
        first = members is None
        if first:
            members = self._groups[group] = {}
        members[channel] = time.time() + self.group_expiry
        return first

    def discard(self, group: str, channel: str) -> bool:
        """Remove; True when the group has no local member left."""
        members = self._groups.get(group)
        if members is None:
            return False
        members.pop(channel, None)
        if not members:
            del self._groups[group]
            return True
        return False

    def members(self, group: str) -> list[str]:
        """Live members; expired ones are dropped as a side effect."""
        members = self._groups.get(group)
        if not members:
            return []
        now = time.time()
        expired = [ch for ch, deadline in members.items() if deadline < now]
        for ch in expired:
            del members[ch]
        if not members:
            del self._groups[group]
            return []
        return list(members)

    def groups(self) -> list[str]:
        return list(self._groups)

    def is_empty(self, group: str) -> bool:
        return not self._groups.get(group)

    def clear(self) -> list[str]:
        names = list(self._groups)
        self._groups.clear()
        return names
