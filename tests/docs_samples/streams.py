"""Sample of docs/topics/streams.md: opt-in concurrent message handling."""

# --8<-- [start:concurrent]
import asyncio
import json

from switchboard.generic.websocket import AsyncJsonWebsocketConsumer


async def search(query: str) -> list[str]:
    """A stand-in for a slow, I/O-bound lookup (a search service, an HTTP API)."""
    await asyncio.sleep(0.05)
    return [query.upper()]


class Search(AsyncJsonWebsocketConsumer):
    max_concurrent_messages = 8  # up to 8 queries of one connection at once

    def concurrency_key(self, message):
        # Queries of one tab are answered in order; different tabs run side by side.
        text = message.get("text")
        return json.loads(text).get("tab") if text else None

    async def receive_json(self, content, **kwargs):
        results = await search(content["q"])
        await self.send_json({"tab": content.get("tab"), "q": content["q"], "results": results})


# --8<-- [end:concurrent]
