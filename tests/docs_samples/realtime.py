"""Samples of docs/topics/realtime.md: a RealtimeConsumer, and presence from any code."""

from __future__ import annotations

# --8<-- [start:consumer]
from switchboard.realtime import RealtimeConsumer, publish


class Scoreboard(RealtimeConsumer):
    async def connect(self):
        match = self.scope["url_route"]["kwargs"]["match"]
        self.topic = f"match_{match}"
        self.allowed_topics = {self.topic}  # what this client may subscribe to and watch
        self.presence_topics = [self.topic]  # tracked there once accepted
        await self.accept()

    async def get_presence_meta(self):
        return {"role": "viewer"}

    async def receive_json(self, content, **kwargs):
        # Application frames (anything without an "sb" member) arrive here as usual.
        cheer = content.get("cheer") if isinstance(content, dict) else None
        if isinstance(cheer, str) and cheer.strip():
            await publish(self.topic, {"cheer": cheer.strip()[:40]})


# --8<-- [end:consumer]


async def presence_anywhere() -> dict:
    # --8<-- [start:presence]
    from switchboard.realtime.presence import list_presence, presence_store

    await presence_store().track("room.lobby", "conn-1", "alice", {"device": "phone"})
    members = await list_presence("room.lobby")
    # members == {"alice": {"metas": [{"device": "phone", "ref": "conn-1"}]}}
    # --8<-- [end:presence]
    await presence_store().untrack("room.lobby", "conn-1")
    return members
