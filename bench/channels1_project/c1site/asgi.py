"""The interface server's entry point, as Channels 1 projects wrote it: ``channel_layer``.

``daphne c1site.asgi:channel_layer`` on the original stack,
``switchboard serve c1site.asgi:channel_layer`` on Switchboard.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "c1site.settings")

try:
    from switchboard.asgi import get_channel_layer
except ImportError:
    from channels.asgi import get_channel_layer

channel_layer = get_channel_layer()
