"""The site bench/transports_drops.py and bench/transports_cost.py serve with ``switchboard
serve``: one reliable topic, ``feed``, and nothing else (no presence, so what is measured per
client is the transport and the subscription, not a presence store).

Configured from the environment of the server process: ``BENCH_IPC_PATH`` (the IPC layer in
that runtime directory, shared with the bench's publisher process; without it, in-memory).
WebSocket route ``/ws/`` (any path, in fact): a :class:`RealtimeConsumer` allowing ``feed``;
over HTTP the same route with ``sb_transport=sse|poll`` is the fallback session
(switchboard.transports); any other HTTP request is a 404.
"""

from __future__ import annotations

import os

import django
from django.conf import settings

TOPIC = "feed"

if not settings.configured:
    if os.environ.get("BENCH_IPC_PATH"):
        layer = {
            "BACKEND": "switchboard.layers.ipc.IPCChannelLayer",
            "CONFIG": {"path": os.environ["BENCH_IPC_PATH"]},
        }
    else:
        layer = {"BACKEND": "switchboard.layers.inmemory.InMemoryChannelLayer"}
    settings.configure(
        INSTALLED_APPS=["switchboard"],
        CHANNEL_LAYERS={"default": layer},
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        USE_TZ=True,
        SECRET_KEY="bench-transports",  # session tokens are signed
    )
    django.setup()

from switchboard.realtime import RealtimeConsumer  # noqa: E402
from switchboard.routing import ProtocolTypeRouter  # noqa: E402


class Feed(RealtimeConsumer):
    allowed_topics = {TOPIC}

    async def connect(self) -> None:
        await self.accept()


async def not_found(scope, receive, send) -> None:
    while scope["method"] == "POST":  # read the body, so keep-alive stays usable
        if not (await receive()).get("more_body"):
            break
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"9")]
    await send({"type": "http.response.start", "status": 404, "headers": headers})
    await send({"type": "http.response.body", "body": b"not found"})


application = ProtocolTypeRouter({"http": not_found, "websocket": Feed.as_asgi()})
