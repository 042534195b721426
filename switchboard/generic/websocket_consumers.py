"""The WebSocket consumers (sync, async, and JSON flavours) with Channels-compatible methods.

Import them from :mod:`switchboard.generic.websocket`, which also offers the demultiplexers
(:mod:`switchboard.generic.demultiplexer`, built on these).
"""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import async_to_sync

from switchboard.consumer import AsyncConsumer, SyncConsumer
from switchboard.exceptions import AcceptConnection, DenyConnection, StopConsumer
from switchboard.gateway.protocol.messages import MOVABLE_KEY
from switchboard.integration import checks  # noqa: F401 - registers the checks even if the app is not installed

__all__ = [
    "AsyncJsonWebsocketConsumer",
    "AsyncWebsocketConsumer",
    "JsonWebsocketConsumer",
    "WebsocketConsumer",
]


def _accept_message(subprotocol: str | None, headers: Any, movable: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "websocket.accept", "subprotocol": subprotocol}
    if headers:
        message["headers"] = list(headers.items() if isinstance(headers, dict) else headers)
    if not movable:
        message[MOVABLE_KEY] = False
    return message


def _send_message(text_data: str | None, bytes_data: bytes | None) -> dict[str, Any]:
    if text_data is not None:
        return {"type": "websocket.send", "text": text_data}
    if bytes_data is not None:
        return {"type": "websocket.send", "bytes": bytes_data}
    raise ValueError("You must pass one of bytes_data or text_data")


def _close_message(code: int | bool | None, reason: str | None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "websocket.close"}
    # ``send(..., close=True)`` passes True meaning "close with the default code".
    if code is not None and code is not True and code is not False:
        message["code"] = code
    if reason:
        message["reason"] = reason
    return message


class WebsocketConsumer(SyncConsumer):
    """Synchronous WebSocket consumer; override connect, receive and disconnect."""

    groups: list[str] | None = None
    # Gateway mode: False keeps the connection on its worker; when that worker stops, the
    # socket is closed with 1012 (service restart) instead of moving to another one.
    movable: bool = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.groups is None:
            self.groups = []

    def websocket_connect(self, message: dict[str, Any]) -> None:
        if self.groups:
            layer = self._required_layer("sets groups")
            for group in self.groups:
                async_to_sync(layer.group_add)(group, self.channel_name)
                self._track_group(group)
        try:
            self.connect()
        except AcceptConnection:
            self.accept()
        except DenyConnection:
            self.close()

    def connect(self) -> None:
        self.accept()

    def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        super().send(_accept_message(subprotocol, headers, self.movable))

    def websocket_receive(self, message: dict[str, Any]) -> None:
        if message.get("text") is not None:
            self.receive(text_data=message["text"])
        else:
            self.receive(bytes_data=message.get("bytes"))

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        pass

    def send(  # type: ignore[override]
        self,
        text_data: str | None = None,
        bytes_data: bytes | None = None,
        close: bool | int = False,
    ) -> None:
        super().send(_send_message(text_data, bytes_data))
        if close:
            self.close(close)

    def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        super().send(_close_message(code, reason))

    def websocket_disconnect(self, message: dict[str, Any]) -> None:
        if self.groups:
            layer = self._required_layer("sets groups")
            for group in self.groups:
                async_to_sync(layer.group_discard)(group, self.channel_name)
                self._untrack_group(group)
        self.disconnect(message.get("code", 1000))
        raise StopConsumer()

    def disconnect(self, code: int) -> None:
        pass


class JsonWebsocketConsumer(WebsocketConsumer):
    """WebSocket consumer exchanging JSON text frames: override ``receive_json``."""

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs):
        if text_data is None:
            raise ValueError("No text section for incoming WebSocket frame!")
        self.receive_json(self.decode_json(text_data), **kwargs)

    def receive_json(self, content: Any, **kwargs: Any) -> None:
        pass

    def send_json(self, content: Any, close: bool | int = False) -> None:
        self.send(text_data=self.encode_json(content), close=close)

    @classmethod
    def decode_json(cls, text_data: str) -> Any:
        return json.loads(text_data)

    @classmethod
    def encode_json(cls, content: Any) -> str:
        return json.dumps(content)


class AsyncWebsocketConsumer(AsyncConsumer):
    """Asynchronous WebSocket consumer; override connect, receive and disconnect."""

    groups: list[str] | None = None
    # Gateway mode: False keeps the connection on its worker; when that worker stops, the
    # socket is closed with 1012 (service restart) instead of moving to another one.
    movable: bool = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.groups is None:
            self.groups = []

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        if self.groups:
            layer = self._required_layer("sets groups")
            for group in self.groups:
                await layer.group_add(group, self.channel_name)
                self._track_group(group)
        try:
            await self.connect()
        except AcceptConnection:
            await self.accept()
        except DenyConnection:
            await self.close()

    async def connect(self) -> None:
        await self.accept()

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        await super().send(_accept_message(subprotocol, headers, self.movable))

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        text = message.get("text")
        if text is not None:
            await self.receive(text_data=text)
        else:
            await self.receive(bytes_data=message.get("bytes"))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        pass

    async def send(  # type: ignore[override]
        self,
        text_data: str | None = None,
        bytes_data: bytes | None = None,
        close: bool | int = False,
    ) -> None:
        # _send_message, inlined: this runs for every message sent.
        message: dict[str, Any]
        if text_data is not None:
            message = {"type": "websocket.send", "text": text_data}
        elif bytes_data is not None:
            message = {"type": "websocket.send", "bytes": bytes_data}
        else:
            raise ValueError("You must pass one of bytes_data or text_data")
        await super().send(message)
        if close:
            await self.close(close)

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        await super().send(_close_message(code, reason))

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        if self.groups:
            layer = self._required_layer("sets groups")
            for group in self.groups:
                await layer.group_discard(group, self.channel_name)
                self._untrack_group(group)
        await self.disconnect(message.get("code", 1000))
        raise StopConsumer()

    async def disconnect(self, code: int) -> None:
        pass


class AsyncJsonWebsocketConsumer(AsyncWebsocketConsumer):
    """Async WebSocket consumer exchanging JSON text frames: override ``receive_json``."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kw):
        if text_data is None:
            raise ValueError("No text section for incoming WebSocket frame!")
        await self.receive_json(await self.decode_json(text_data), **kw)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        pass

    async def send_json(self, content: Any, close: bool | int = False) -> None:
        await self.send(text_data=await self.encode_json(content), close=close)

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        return json.loads(text_data)

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        return json.dumps(content)
