"""The chat room: a reliable group ``chat_<room>`` with history and presence.

Messages are published with :func:`switchboard.realtime.history.publish`, so a browser that
reconnects gets what it missed (switchboard.js sends its last offset) and a newcomer gets the
last ``HISTORY_SIZE`` messages. Each connection is tracked in the room's presence under the
user's name, so the page lists who is online (several tabs of one user count once).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chat.guests import SESSION_KEY, new_guest_name
from switchboard.db import database_sync_to_async
from switchboard.realtime import RealtimeConsumer, publish

MAX_MESSAGE_LENGTH = 2000
HISTORY_SIZE = 200  # messages kept per room
HISTORY_TTL = 24 * 3600  # seconds a message stays recoverable


def _device(scope: dict[str, Any]) -> str:
    agent = dict(scope.get("headers") or []).get(b"user-agent", b"").decode("latin-1")
    for name in ("Mobile", "Firefox", "Edg", "Chrome", "Safari"):
        if name in agent:
            return {"Edg": "Edge", "Mobile": "mobile"}.get(name, name)
    return "other"


class ChatConsumer(RealtimeConsumer):
    async def connect(self) -> None:
        room = self.scope["url_route"]["kwargs"]["room"]
        self.topic = f"chat_{room}"
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            self.username = user.get_username()
        else:
            # The name the room page put in the session; a client without the session cookie
            # (a script, say) gets one for this connection only.
            self.username = await self._session_guest_name() or new_guest_name()
        # The browser may subscribe to this room and watch its presence, nothing else.
        self.allowed_topics = {self.topic}
        self.presence_topics = [self.topic]
        await self.accept()
        await self.send_json({"type": "welcome", "username": self.username, "room": room})

    @database_sync_to_async
    def _session_guest_name(self) -> str | None:
        session = self.scope.get("session")
        return None if session is None else session.get(SESSION_KEY)

    async def get_presence_key(self) -> str:
        return self.username

    async def get_presence_meta(self) -> dict[str, Any]:
        return {"device": _device(self.scope), "status": "online"}

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        text = content.get("message") if isinstance(content, dict) else None
        if not isinstance(text, str) or not text.strip():
            await self.send_json({"type": "error", "error": 'Send {"message": "<text>"}'})
            return
        if len(text) > MAX_MESSAGE_LENGTH:
            error = f"Messages are limited to {MAX_MESSAGE_LENGTH} characters"
            await self.send_json({"type": "error", "error": error})
            return
        message = {
            "username": self.username,
            "message": text.strip(),
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        await publish(self.topic, message, size=HISTORY_SIZE, ttl=HISTORY_TTL)
