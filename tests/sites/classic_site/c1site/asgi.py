"""The interface server's entry point, the Channels 1 way:
``switchboard serve c1site.asgi:channel_layer``."""

import os

from switchboard.asgi import get_channel_layer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "c1site.settings")
channel_layer = get_channel_layer()
