"""Consumers the gateway tests drive through a gateway and its workers."""

import asyncio
import json
import os
import sys

from switchboard.generic.websocket import AsyncWebsocketConsumer


def resumed(scope) -> bool:
    return bool(scope.get("switchboard", {}).get("resumed"))


class EchoConsumer(AsyncWebsocketConsumer):
    """Echoes each text message with the pid of the worker that handled it; "sleep:S:text"
    echoes after S seconds; "fail" raises."""

    async def connect(self):
        self.connects = 1
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        if bytes_data is not None:
            await self.send(bytes_data=bytes_data)
            return
        if text_data == "fail":
            raise ValueError("asked to fail")
        if text_data.startswith("sleep:"):
            _, seconds, text_data = text_data.split(":", 2)
            await asyncio.sleep(float(seconds))
        reply = {"echo": text_data, "pid": os.getpid(), "resumed": resumed(self.scope)}
        await self.send(text_data=json.dumps(reply))


class PinnedConsumer(EchoConsumer):
    movable = False

    async def disconnect(self, code):
        print(f"pinned consumer disconnected with {code}", file=sys.stderr, flush=True)


class ConcurrentEchoConsumer(EchoConsumer):
    """Handles up to four messages at once: waiting in receive does not mean idle."""

    max_concurrent_messages = 4


class ScopeConsumer(AsyncWebsocketConsumer):
    """Sends what its scope says, once accepted."""

    async def connect(self):
        await self.accept()
        user = self.scope["user"]
        session = self.scope["session"]
        await self.send(
            text_data=json.dumps(
                {
                    "client": list(self.scope["client"]),
                    "path": self.scope["path"],
                    "query_string": self.scope["query_string"].decode(),
                    "headers": {k.decode(): v.decode() for k, v in self.scope["headers"]},
                    "cookies": self.scope.get("cookies", {}),
                    "user": user.username if user.is_authenticated else None,
                    "session_key": session.session_key,
                    "resumed": resumed(self.scope),
                    "channel_name": self.channel_name,
                    "connection": self.scope["switchboard"]["connection"],
                    "pid": os.getpid(),
                }
            )
        )

    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=json.dumps({"echo": text_data, "pid": os.getpid()}))


class FailingConsumer(EchoConsumer):
    """Raises in connect when it is resumed on another worker."""

    async def connect(self):
        if resumed(self.scope):
            raise RuntimeError("cannot resume this one")
        await self.accept()


class RefusingConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        await self.close()


class ChatConsumer(AsyncWebsocketConsumer):
    """The tutorial's chat, with the sender's name: one group per room."""

    async def connect(self):
        self.group = "chat_" + self.scope["url_route"]["kwargs"]["room"]
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        user = self.scope["user"]
        await self.channel_layer.group_send(
            self.group,
            {
                "type": "chat.message",
                "message": json.loads(text_data)["message"],
                "user": user.username if user.is_authenticated else "anonymous",
            },
        )

    async def chat_message(self, event):
        await self.send(text_data=json.dumps({"message": event["message"], "user": event["user"]}))
