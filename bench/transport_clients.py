"""Python asyncio clients doing what switchboard.js does, one per transport, for the benches.

Each client subscribes to one reliable topic, remembers the epoch and offset of the last
``pub`` it handled and, when its connection ends, reconnects after a jittered delay of 0.5 to
2 s and subscribes again with that position (``{"sb": "sub", "topic", "epoch", "offset"}``),
as switchboard.js does; a ``pub`` at or below the remembered offset of the same epoch is a
duplicate and dropped (counted as such). Three transports:

``ws``    a WebSocket (the ``websockets`` package).
``sse``   the fallback session over Server-Sent Events: ``GET ...?sb_transport=sse`` read as an
          event stream, frames to the server by ``POST ...&sb_session=TOKEN``.
``poll``  long-polling: ``POST ...?sb_transport=poll`` opens the session, then one ``GET
          ...&sb_session=TOKEN&sb_ack=SEQ`` at a time; a poll that failed on the network is
          asked once more before the session is given up, repeated frames (seq already seen)
          are dropped, as switchboard.js does.

SSE and long-polling speak HTTP/1.1 on raw asyncio streams (:class:`Http`): keep-alive, one
request at a time per connection, ``content-length`` or chunked bodies. Every client keeps a
:class:`Tally` of what it saw. The wire protocol is docs of issue 24 (switchboard.transports).
"""

from __future__ import annotations

import asyncio
import codecs
import json
import random
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

MIN_DELAY, MAX_DELAY = 0.5, 2.0  # seconds before a reconnect
OPEN_TIMEOUT = 5.0  # seconds for a session to open (switchboard.js: openTimeout)
POST_TIMEOUT = 30.0


class Dropped(Exception):
    """The session ended (the connection closed, or the server said it is gone)."""


@dataclass
class Tally:
    """One client's view of one topic: what it handled, what it dropped, how often it came back."""

    topic: str
    epoch: str | None = None
    offset: int | None = None
    delivered: list[tuple[str, int]] = field(default_factory=list)  # after de-duplication
    raw_duplicates: int = 0  # pub frames at or below the position: dropped here
    gaps: int = 0  # a pub further than offset + 1 with no resync before it
    resyncs: int = 0  # "recovered": false, or a resync frame
    repeats: int = 0  # long-polling: frames whose seq was already seen (transport level)
    sessions: int = 0  # sessions that opened
    errors: dict[str, int] = field(default_factory=dict)  # why sessions ended, by kind
    target: tuple[str, int] | None = None
    first_sub: asyncio.Event = field(default_factory=asyncio.Event)
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    reached_at: float | None = None
    log: list[tuple[float, str]] = field(default_factory=list)  # sessions, (re)subscriptions

    def note(self, text: str) -> None:
        self.log.append((asyncio.get_running_loop().time(), text))

    def sub_frame(self) -> dict[str, Any]:
        frame: dict[str, Any] = {"sb": "sub", "topic": self.topic}
        if self.epoch is not None:
            frame["epoch"], frame["offset"] = self.epoch, self.offset
        return frame

    def handle(self, frame: Any) -> None:
        if not isinstance(frame, dict) or frame.get("topic") != self.topic:
            return
        kind = frame.get("sb")
        if kind == "subscribed":
            if frame.get("recovered") is False:
                self.resyncs += 1
            self.note(f"subscribed {frame.get('offset')} recovered={frame.get('recovered')}")
            self.epoch, self.offset = frame["epoch"], frame["offset"]
            self.first_sub.set()
        elif kind == "pub":
            epoch, offset = frame["epoch"], frame["offset"]
            if epoch == self.epoch and self.offset is not None and offset <= self.offset:
                self.raw_duplicates += 1
                return
            if epoch != self.epoch or offset != (self.offset or 0) + 1:
                self.gaps += 1
            self.epoch, self.offset = epoch, offset
            self.delivered.append((epoch, offset))
        elif kind == "resync":
            self.note(f"resync {frame.get('offset')}")
            self.resyncs += 1
            self.epoch, self.offset = frame["epoch"], frame["offset"]
        else:
            return
        self._check()

    def expect(self, epoch: str, offset: int) -> None:
        """Sets :attr:`reached` once the publication ``epoch``/``offset`` was handled."""
        self.target = (epoch, offset)
        self._check()

    def _check(self) -> None:
        target = self.target
        if target and self.epoch == target[0] and (self.offset or 0) >= target[1]:
            if not self.reached.is_set():
                self.reached_at = asyncio.get_running_loop().time()
                self.reached.set()

    def ended(self, error: BaseException | str) -> None:
        kind = error if isinstance(error, str) else type(error).__name__
        self.note(f"ended {kind} {error} at {self.offset}")
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def summary(self) -> dict[str, Any]:
        """The picklable part, for the bench's parent process."""
        keys = ("delivered", "raw_duplicates", "gaps", "resyncs", "repeats", "sessions", "errors")
        keys += ("log",)
        return {key: getattr(self, key) for key in keys} | {"reached_at": self.reached_at}


class Http:
    """One HTTP/1.1 keep-alive connection, opened on first use and again after it ended."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()
        self.reader = self.writer = None

    async def send(self, method: str, target: str, body: bytes = b"", kind: str = "") -> None:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), OPEN_TIMEOUT
            )
        head = f"{method} {target} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
        if kind:
            head += f"content-type: {kind}\r\n"
        if method == "POST":
            head += f"content-length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)

    async def head(self) -> tuple[int, dict[str, str]]:
        assert self.reader is not None
        line = await self.reader.readline()
        if not line:
            raise Dropped("closed before a response")
        status = int(line.split()[1])
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b"\n"):
            if not line:
                raise Dropped("closed in the response head")
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    async def chunks(self, headers: dict[str, str]):
        """The body, piece by piece as it arrives (chunked, sized, or up to the close)."""
        reader = self.reader
        assert reader is not None
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                line = await reader.readline()
                if not line:
                    raise Dropped("closed in the body")
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    await reader.readline()
                    return
                data = await reader.readexactly(size)
                await reader.readexactly(2)
                yield data
        elif "content-length" in headers:
            left = int(headers["content-length"])
            while left:
                data = await reader.read(min(left, 65536))
                if not data:
                    raise Dropped("closed in the body")
                left -= len(data)
                yield data
        else:
            while data := await reader.read(65536):
                yield data
            self.close()

    async def request(
        self, method: str, target: str, body: bytes = b"", kind: str = "", timeout: float = 30
    ) -> tuple[int, bytes]:
        """Status and whole body; the connection is closed on any failure (never half-read)."""
        try:
            async with asyncio.timeout(timeout):
                await self.send(method, target, body, kind)
                status, headers = await self.head()
                data = b""
                if status not in (204, 304):  # those never have a body (RFC 9112 6.3)
                    data = b"".join([piece async for piece in self.chunks(headers)])
        except BaseException:
            self.close()
            raise
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, data


class SseParser:
    """An event stream, fed in arbitrary pieces: ``(event, data)`` per complete event."""

    def __init__(self) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.buffer = ""

    def feed(self, data: bytes) -> list[tuple[str, str]]:
        self.buffer += self.decoder.decode(data)
        if "\r" in self.buffer and not self.buffer.endswith("\r"):
            self.buffer = self.buffer.replace("\r\n", "\n").replace("\r", "\n")
        events = []
        while "\n\n" in self.buffer:
            block, self.buffer = self.buffer.split("\n\n", 1)
            event, lines = "message", []
            for line in block.split("\n"):
                if not line or line.startswith(":"):
                    continue  # a comment (the heartbeat)
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "event":
                    event = value
                elif name == "data":
                    lines.append(value)
            if lines:
                events.append((event, "\n".join(lines)))
        return events


class Client:
    """One client of one transport; :meth:`run` until cancelled, reconnecting as the browser."""

    transport = ""

    def __init__(self, url: str, tally: Tally) -> None:
        self.url, self.tally = url, tally
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = parts.path or "/"
        self.opened = False

    def _target(self, **params: Any) -> str:
        return self.path + "?" + "&".join(f"{k}={v}" for k, v in params.items())

    async def run(self) -> None:
        attempt = 0
        while True:
            self.opened = False
            try:
                await self.session()
                self.tally.ended("closed by the server")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every way a session ends: reconnect
                self.tally.ended(exc)
            if self.opened:
                attempt = 0
            delay = random.uniform(MIN_DELAY, min(MAX_DELAY, MIN_DELAY * 2 ** (attempt + 1)))
            attempt += 1
            await asyncio.sleep(delay)

    def _open(self) -> None:
        self.tally.note("open")
        self.opened = True
        self.tally.sessions += 1

    async def session(self) -> None:
        raise NotImplementedError


class WebSocketClient(Client):
    transport = "ws"

    async def session(self) -> None:
        from websockets.asyncio.client import connect

        async with connect(self.url, open_timeout=OPEN_TIMEOUT, max_size=None) as ws:
            self._open()
            await ws.send(json.dumps(self.tally.sub_frame()))
            async for text in ws:
                self.tally.handle(json.loads(text))


class HttpClient(Client):
    """What SSE and long-polling share: posting frames to the session."""

    async def post(self, http: Http, session: str, frames: list[str]) -> None:
        target = self._target(sb_transport=self.transport, sb_session=session)
        body = json.dumps({"frames": frames}).encode()
        status, _ = await http.request("POST", target, body, "text/plain", POST_TIMEOUT)
        if status != 204:
            raise Dropped(f"POST {status}")


class SseClient(HttpClient):
    transport = "sse"

    async def session(self) -> None:
        stream, post = Http(self.host, self.port), Http(self.host, self.port)
        posting: asyncio.Task[None] | None = None
        try:
            async with asyncio.timeout(OPEN_TIMEOUT) as opening:
                await stream.send("GET", self._target(sb_transport="sse"))
                status, headers = await stream.head()
                if status != 200:
                    raise Dropped(f"GET {status}")
                parser, idle = SseParser(), 30.0
                pieces = stream.chunks(headers)
                while True:
                    piece = await anext(pieces)
                    for event, data in parser.feed(piece):
                        if event == "sb.session":
                            info = json.loads(data)
                            self._open()
                            idle = float(info.get("heartbeat", 15)) + 10
                            opening.reschedule(None)
                            frames = [json.dumps(self.tally.sub_frame())]
                            posting = asyncio.create_task(self.post(post, info["session"], frames))
                            # A refused POST ends the session, as in switchboard.js.
                            posting.add_done_callback(lambda t: _refused(t, stream))
                        elif event == "message":
                            self.tally.handle(json.loads(data))
                        elif event == "sb.close":
                            return
                    if self.opened:
                        break
            while True:  # open: silence longer than the heartbeat is a dead connection
                async with asyncio.timeout(idle):
                    piece = await anext(pieces)
                for event, data in parser.feed(piece):
                    if event == "message":
                        self.tally.handle(json.loads(data))
                    elif event == "sb.close":
                        return
        except StopAsyncIteration:
            raise Dropped("stream ended") from None
        finally:
            if posting is not None and not posting.done():
                posting.cancel()
            stream.close()
            post.close()


def _refused(task: asyncio.Task[None], stream: Http) -> None:
    if not task.cancelled() and task.exception() is not None:
        stream.close()


class PollClient(HttpClient):
    transport = "poll"

    async def session(self) -> None:
        post, poll = Http(self.host, self.port), Http(self.host, self.port)
        try:
            status, body = await post.request("POST", self._target(sb_transport="poll"))
            if status != 200:
                raise Dropped(f"open {status}")
            info = json.loads(body)
            session, timeout = info["session"], float(info.get("timeout", 25))
            self._open()
            await self.post(post, session, [json.dumps(self.tally.sub_frame())])
            seq, retried = 0, False
            while True:
                target = self._target(sb_transport="poll", sb_session=session, sb_ack=seq)
                try:
                    status, body = await poll.request("GET", target, timeout=timeout + 10)
                except (OSError, Dropped, TimeoutError, asyncio.IncompleteReadError):
                    if retried:
                        raise
                    retried = True  # nothing is lost while the session lives: ask again once
                    continue
                if status != 200:
                    raise Dropped(f"poll {status}")
                retried = False
                answer = json.loads(body)
                frames = answer.get("frames", [])
                n = answer["seq"] - len(frames)
                for frame in frames:
                    n += 1
                    if n <= seq:
                        self.tally.repeats += 1
                        continue
                    seq = n
                    if isinstance(frame, str):
                        self.tally.handle(json.loads(frame))
                if answer.get("close"):
                    return
        finally:
            post.close()
            poll.close()


CLIENTS: dict[str, type[Client]] = {"ws": WebSocketClient, "sse": SseClient, "poll": PollClient}


def make_client(transport: str, url: str, topic: str) -> Client:
    """A client of ``transport`` ("ws", "sse", "poll") for the WebSocket route ``url``."""
    return CLIENTS[transport](url, Tally(topic))
