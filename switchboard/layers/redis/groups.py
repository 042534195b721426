"""Group membership kept in this process only.

Redis never stores who is in a group: each process subscribes once per group it
has members in and fans a group message out to its own members. So a process
that dies leaves nothing behind, and a Redis restart loses no membership.
"""

from __future__ import annotations

import time

from switchboard.layers.groups import GroupMemberships


class LocalGroups(GroupMemberships):
    """This process's memberships, on wall-clock time like the messages it receives."""

    __slots__ = ()

    def __init__(self, group_expiry: float) -> None:
        super().__init__(group_expiry, time.time)
