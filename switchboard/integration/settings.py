"""Django glue for settings the Django-free packages read through hooks, and what the
settings checks share."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.signals import setting_changed


def closest_name(name: Any, known: Iterable[str]) -> str | None:
    """The known name ``name`` is most likely a typo of (for a "did you mean" in a settings
    check), or None."""
    close = difflib.get_close_matches(str(name), list(known), n=1)
    return close[0] if close else None


def channel_layers_setting() -> Mapping[str, Any] | None:
    """``settings.CHANNEL_LAYERS``, or ``None`` (embedded default) when unset or unconfigured."""
    from django.conf import settings

    if not settings.configured:
        return None
    return getattr(settings, "CHANNEL_LAYERS", None)


def reset_channel_layers(*, setting: str, **kwargs: Any) -> None:
    """``setting_changed`` receiver: layers built from an old ``CHANNEL_LAYERS`` are dropped.

    ``override_settings(CHANNEL_LAYERS=...)`` (entering and leaving) then gets layers built
    from the settings in force, as with Channels.
    """
    if setting == "CHANNEL_LAYERS":
        from switchboard.layers.registry import channel_layers

        channel_layers.reset()


# Connected here, not only in AppConfig.ready(): this module is imported as soon as the
# default layer manager first reads the setting, so layers are reset even in projects that
# use Switchboard without listing it in INSTALLED_APPS.
setting_changed.connect(reset_channel_layers, dispatch_uid="switchboard.reset_channel_layers")
