"""Group memberships held by one layer instance, indexed both ways.

``{group: {channel: expires_at}}`` answers "who gets a group message"; the reverse index
``{channel: group(s)}`` answers "which groups did this channel join", so releasing a channel
that went away costs one lookup per group it joined, never a scan of every group.

Most channels (one per connection) join a single group: the reverse index then holds the
group's name itself, and only a channel in several groups gets a set (an empty set is ~200
bytes, a few megabytes over many thousands of connections).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

__all__ = ["GroupMemberships"]


class GroupMemberships(Mapping[str, dict[str, float]]):
    """Memberships with an expiry each (renewed by ``add``), enforced on read and by ``sweep``.

    Read as a mapping it is ``{group: {channel: expires_at}}`` (expired entries included until
    swept); change it only through its methods, which keep both indexes in step.
    """

    __slots__ = ("_by_channel", "_groups", "clock", "group_expiry")

    def __init__(self, group_expiry: float, clock: Callable[[], float]) -> None:
        self.group_expiry = group_expiry
        self.clock = clock
        self._groups: dict[str, dict[str, float]] = {}
        self._by_channel: dict[str, str | set[str]] = {}

    def add(self, group: str, channel: str) -> bool:
        """Add or renew; True when this is the group's first member."""
        members = self._groups.get(group)
        first = members is None
        if members is None:
            members = self._groups[group] = {}
        members[channel] = self.clock() + self.group_expiry
        joined = self._by_channel.get(channel)
        if joined is None:
            self._by_channel[channel] = group
        elif isinstance(joined, str):
            if joined != group:
                self._by_channel[channel] = {joined, group}
        else:
            joined.add(group)
        return first

    def discard(self, group: str, channel: str) -> bool:
        """Remove one membership; True when that left the group without members."""
        members = self._groups.get(group)
        if members is None or members.pop(channel, None) is None:
            return False
        self._unindex(channel, group)
        if not members:
            del self._groups[group]
            return True
        return False

    def _unindex(self, channel: str, group: str) -> None:
        joined = self._by_channel.get(channel)
        if joined is None:
            return
        if isinstance(joined, str):
            if joined == group:
                del self._by_channel[channel]
            return
        joined.discard(group)
        if len(joined) == 1:
            self._by_channel[channel] = joined.pop()
        elif not joined:
            del self._by_channel[channel]

    def release(self, channel: str) -> list[str]:
        """Drop ``channel`` from every group it is in; returns the groups that left empty."""
        joined = self._by_channel.pop(channel, None)
        if joined is None:
            return []
        emptied = []
        for group in (joined,) if isinstance(joined, str) else joined:
            members = self._groups.get(group)
            if members is not None:
                members.pop(channel, None)
                if not members:
                    del self._groups[group]
                    emptied.append(group)
        return emptied

    def groups_of(self, channel: str) -> set[str]:
        joined = self._by_channel.get(channel)
        if joined is None:
            return set()
        return {joined} if isinstance(joined, str) else set(joined)

    def members(self, group: str) -> list[str]:
        """Live members; expired ones are dropped as a side effect."""
        members = self._groups.get(group)
        if not members:
            return []
        now = self.clock()
        expired = [ch for ch, deadline in members.items() if deadline <= now]
        if expired:
            for channel in expired:
                del members[channel]
                self._unindex(channel, group)
            if not members:
                del self._groups[group]
                return []
        return list(members)

    def sweep(self) -> list[str]:
        """Drop every expired membership; returns the groups that left empty."""
        groups_before, channels_before = len(self._groups), len(self._by_channel)
        emptied = [group for group in list(self._groups) if not self.members(group)]
        # Dicts never shrink their tables on delete; rebuild after a large die-off.
        if groups_before > 1024 and len(self._groups) < groups_before // 4:
            self._groups = dict(self._groups)
        if channels_before > 1024 and len(self._by_channel) < channels_before // 4:
            self._by_channel = dict(self._by_channel)
        return emptied

    def groups(self) -> list[str]:
        return list(self._groups)

    def is_empty(self, group: str) -> bool:
        return not self._groups.get(group)

    def memberships(self) -> int:
        """Memberships held, expired or not yet swept (for tests and monitoring)."""
        return sum(len(members) for members in self._groups.values())

    def __len__(self) -> int:
        return len(self._groups)

    def __iter__(self) -> Iterator[str]:
        return iter(self._groups)

    def __contains__(self, group: object) -> bool:
        return group in self._groups

    def __getitem__(self, group: str) -> dict[str, float]:
        return self._groups[group]

    def clear(self) -> list[str]:
        names = list(self._groups)
        self._groups.clear()
        self._by_channel.clear()
        return names
