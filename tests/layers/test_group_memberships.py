"""GroupMemberships: both indexes stay in step through add, discard, expiry and release."""

from __future__ import annotations

from switchboard.layers.groups import GroupMemberships


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_release_drops_a_channel_from_every_group_and_reports_emptied_ones():
    groups = GroupMemberships(60, Clock())
    for group in ("a", "b", "c"):
        groups.add(group, "x")
    groups.add("c", "y")
    assert groups.groups_of("x") == {"a", "b", "c"}
    assert sorted(groups.release("x")) == ["a", "b"]
    assert dict(groups) == {"c": {"y": 160.0}}
    assert groups.groups_of("x") == set() and groups.release("x") == []


def test_discard_and_expiry_keep_the_reverse_index_in_step():
    clock = Clock()
    groups = GroupMemberships(60, clock)
    groups.add("a", "x")
    groups.add("b", "x")
    assert groups.discard("a", "x") is True  # "a" left empty
    assert groups.groups_of("x") == {"b"}
    clock.now += 61
    assert groups.members("b") == [] and not groups
    assert groups.groups_of("x") == set()
    groups.add("a", "x")
    groups.add("a", "y")
    clock.now += 30
    groups.add("a", "y")  # renewed
    clock.now += 31
    assert groups.sweep() == [] and groups.members("a") == ["y"]
    assert groups.groups_of("x") == set() and groups.memberships() == 1
