"""Django glue for settings the Django-free packages read through hooks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def channel_layers_setting() -> Mapping[str, Any] | None:
    """``settings.CHANNEL_LAYERS``, or ``None`` (embedded default) when unset or unconfigured."""
    from django.conf import settings

    if not settings.configured:
        return None
    return getattr(settings, "CHANNEL_LAYERS", None)
