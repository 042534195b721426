"""override_settings(CHANNEL_LAYERS=...) drops layers built from the previous setting.

Django sends ``setting_changed`` whenever ``override_settings`` enters or leaves; Channels
forgets its cached layers on it, and test suites rely on that to swap layer configuration.
"""

from __future__ import annotations

from django.test import SimpleTestCase, override_settings

from switchboard.layers import get_channel_layer
from switchboard.layers.inmemory import InMemoryChannelLayer

INMEMORY = "switchboard.layers.inmemory.InMemoryChannelLayer"
SMALL = {"default": {"BACKEND": INMEMORY, "CONFIG": {"capacity": 3}}}


def test_override_settings_builds_layers_from_the_overridden_setting():
    before = get_channel_layer()
    assert before is not None and before.capacity == 100  # the suite's settings: no CONFIG
    with override_settings(CHANNEL_LAYERS=SMALL):
        inside = get_channel_layer()
        assert inside is not before
        assert isinstance(inside, InMemoryChannelLayer) and inside.capacity == 3
    after = get_channel_layer()
    assert after is not inside and after.capacity == 100


async def test_messages_go_through_the_overridden_layer():
    outer = get_channel_layer()
    with override_settings(CHANNEL_LAYERS=SMALL):
        layer = get_channel_layer()
        assert layer is not outer
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "hello"})
        assert await layer.receive(channel) == {"type": "hello"}


def test_an_alias_added_by_the_override_exists_only_inside_it():
    assert get_channel_layer("extra") is None
    with override_settings(CHANNEL_LAYERS={**SMALL, "extra": {"BACKEND": INMEMORY}}):
        assert get_channel_layer("extra") is not None
    assert get_channel_layer("extra") is None


def test_other_settings_changes_keep_the_built_layers():
    layer = get_channel_layer()
    with override_settings(DEBUG=True):
        assert get_channel_layer() is layer


class OverriddenInTestCase(SimpleTestCase):
    """The usual shape: Django's own test case, settings changed per test method."""

    def setUp(self):
        # Built outside the method's override, as a fixture or an earlier test would.
        self.default = get_channel_layer()

    def test_self_settings_swaps_the_layer(self):
        with self.settings(CHANNEL_LAYERS=SMALL):
            self.assertEqual(get_channel_layer().capacity, 3)
        self.assertIsNot(get_channel_layer(), self.default)
        self.assertEqual(get_channel_layer().capacity, 100)

    @override_settings(CHANNEL_LAYERS={"default": {"BACKEND": INMEMORY, "CONFIG": {"expiry": 5}}})
    def test_method_decorator(self):
        self.assertIsNot(get_channel_layer(), self.default)
        self.assertEqual(get_channel_layer().expiry, 5)
