"""``switchboard.E040``: a malformed ``SWITCHBOARD_TRANSPORTS`` setting.

Registered when the app config (``switchboard.apps``) imports this module. Requests under a
malformed setting use the defaults for the wrong keys: without this check a typo would go
unnoticed.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from .settings import problems

__all__ = ["check_transports"]


@register("switchboard")
def check_transports(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not hasattr(settings, "SWITCHBOARD_TRANSPORTS"):
        return []
    return [
        Error(
            problem,
            hint="See the keys and defaults in switchboard.transports.settings.DEFAULTS.",
            id="switchboard.E040",
        )
        for problem in problems(settings.SWITCHBOARD_TRANSPORTS)
    ]
