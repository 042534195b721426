"""The tutorial's first ``chat/consumers.py`` (docs/tutorial.md, step 2): a plain consumer.

Every socket of a room joins the group ``chat_<room>``; a message is sent to the group and each
member forwards it to its browser. The final version (examples/chat/chat/consumers.py) adds who
is online and history on top; tests/test_docs_tutorial.py runs both.
"""

# --8<-- [start:consumer]
from datetime import UTC, datetime
from typing import Any

from chat.guests import SESSION_KEY, new_guest_name
from switchboard.db import database_sync_to_async
from switchboard.generic.websocket import AsyncJsonWebsocketConsumer

MAX_MESSAGE_LENGTH = 2000


class ChatConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        room = self.scope["url_route"]["kwargs"]["room"]
        self.group = f"chat_{room}"
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            self.username = user.get_username()
        else:
            # The guest name the room page keeps in the session (or one for this socket only).
            self.username = await self._session_guest_name() or new_guest_name()
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "welcome", "username": self.username, "room": room})

    @database_sync_to_async
    def _session_guest_name(self) -> str | None:
        session = self.scope.get("session")
        return None if session is None else session.get(SESSION_KEY)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        text = content.get("message") if isinstance(content, dict) else None
        if not isinstance(text, str) or not text.strip():
            await self.send_json({"type": "error", "error": 'Send {"message": "<text>"}'})
            return
        if len(text) > MAX_MESSAGE_LENGTH:
            error = f"Messages are limited to {MAX_MESSAGE_LENGTH} characters"
            await self.send_json({"type": "error", "error": error})
            return
        await self.channel_layer.group_send(
            self.group,
            {
                "type": "chat.message",
                "username": self.username,
                "message": text.strip(),
                "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send_json({**event, "type": "message"})


# --8<-- [end:consumer]
