"""tests/realtime/site.py's application (``RealtimeConsumer`` at ``/ws/``), with a SECRET_KEY
(transport tokens are signed) and the IPC layer in ``RT_IPC_PATH``."""

from __future__ import annotations

import os

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        SECRET_KEY="transport-process-tests",
        INSTALLED_APPS=["switchboard"],
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": "switchboard.layers.ipc.IPCChannelLayer",
                "CONFIG": {"path": os.environ["RT_IPC_PATH"]},
            }
        },
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        USE_TZ=True,
    )
    django.setup()

from tests.realtime.site import application  # noqa: E402

__all__ = ["application"]
