"""The ASGI application the realtime end-to-end tests serve with ``switchboard serve``.

Configured from the environment (so the test decides per server process):
``RT_REDIS_URL`` (the Redis layer), ``RT_IPC_PATH`` (the IPC layer in that runtime directory;
with neither, in-memory), ``RT_PRESENCE_TIMEOUT`` (seconds),
``RT_HISTORY_SIZE``. WebSocket ``/ws/?user=<name>``: a :class:`RealtimeConsumer` on topic
``room`` (presence tracked under ``user``); ``{"publish": data}`` publishes ``data`` to
``room``. HTTP: ``/switchboard.js`` (the shipped client) and ``/`` (an empty page that
browser tests load it into).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs

import django
from django.conf import settings

if not settings.configured:
    redis_url = os.environ.get("RT_REDIS_URL")
    if redis_url:
        layer = {
            "BACKEND": "switchboard.layers.redis.RedisChannelLayer",
            "CONFIG": {
                "hosts": [redis_url],
                "presence_timeout": float(os.environ.get("RT_PRESENCE_TIMEOUT", "15")),
            },
        }
    elif os.environ.get("RT_IPC_PATH"):
        layer = {
            "BACKEND": "switchboard.layers.ipc.IPCChannelLayer",
            "CONFIG": {
                "path": os.environ["RT_IPC_PATH"],
                "presence_timeout": float(os.environ.get("RT_PRESENCE_TIMEOUT", "5")),
            },
        }
    else:
        layer = {"BACKEND": "switchboard.layers.inmemory.InMemoryChannelLayer"}
    settings.configure(
        INSTALLED_APPS=["switchboard"],
        CHANNEL_LAYERS={"default": layer},
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        USE_TZ=True,
    )
    django.setup()

from switchboard.realtime import RealtimeConsumer, publish  # noqa: E402
from switchboard.routing import ProtocolTypeRouter  # noqa: E402

CLIENT = Path(__file__).resolve().parents[2] / "switchboard/static/switchboard/switchboard.js"
HISTORY_SIZE = int(os.environ.get("RT_HISTORY_SIZE", "1000"))
PAGE = b"<!doctype html><meta charset=utf-8><title>switchboard.js tests</title><body></body>"


class Room(RealtimeConsumer):
    async def connect(self) -> None:
        query = parse_qs(self.scope["query_string"].decode())
        self.user = query.get("user", [self.presence_ref])[0]
        self.allowed_topics = {"room", "other"}
        self.presence_topics = ["room"]
        await self.accept()

    async def get_presence_key(self) -> str:
        return self.user

    async def get_presence_meta(self) -> dict:
        return {"pid": os.getpid()}

    async def receive_json(self, content, **kwargs) -> None:
        if isinstance(content, dict) and "publish" in content:
            position = await publish("room", content["publish"], size=HISTORY_SIZE)
            await self.send_json({"published": position.offset})
        elif isinstance(content, dict) and "stream" in content:
            # The demultiplexer's frame shape, echoed for the client's streams API.
            await self.send_json({"stream": content["stream"], "payload": content["payload"]})
        else:
            await self.send_json({"echo": content})


async def http_app(scope, receive, send) -> None:
    while scope["method"] == "POST":
        if not (await receive()).get("more_body"):
            break
    if scope["path"] == "/switchboard.js":
        body, kind = CLIENT.read_bytes(), b"text/javascript; charset=utf-8"
    elif scope["path"] == "/":
        body, kind = PAGE, b"text/html; charset=utf-8"
    else:
        body, kind = b"not found", b"text/plain"
    status = 404 if body == b"not found" else 200
    headers = [(b"content-type", kind), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


application = ProtocolTypeRouter({"http": http_app, "websocket": Room.as_asgi()})
