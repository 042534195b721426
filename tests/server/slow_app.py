"""App for the CLI subprocess tests: /slow answers after 0.5 s."""

import asyncio


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    slow = scope["path"] == "/slow"
    if slow:
        await asyncio.sleep(0.5)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"slow" if slow else b"fast"})
