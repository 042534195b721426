"""This process's transport sessions, and the requests that reach them from other processes.

A session lives in the process (event loop) that opened it. Its token names that process's
transport channel on the default channel layer (``sbt.<token>!<id>``), so a POST or poll that
lands in another process (``serve --workers N``, another machine behind a load balancer) is
forwarded there through the layer:

* ``{"type": "sbt.send", "sid", "frames", "close", "reply", "rid"}``
* ``{"type": "sbt.poll", "sid", "ack", "reply", "rid"}``

and answered with ``{"type": "sbt.reply", "rid", "status", "body"}`` on the forwarder's own
transport channel. Without a channel layer the host is ``-`` and sessions are reachable only
in the process that opened them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from typing import Any

from django.core import signing

from switchboard.layers import get_channel_layer
from switchboard.server.runtime.shutdown_hooks import add_shutdown_hook

from .session import Session
from .settings import TransportSettings

__all__ = ["NO_HOST", "TransportHost", "current_host", "parse_token", "reach"]

logger = logging.getLogger("switchboard.transports")

NO_HOST = "-"
SALT = "switchboard.transports"
# Seconds a forwarded POST waits for the session's process before giving up (410).
SEND_WAIT = 10.0
# Seconds a forwarded poll waits beyond the poll timeout.
POLL_MARGIN = 10.0

_hosts: dict[asyncio.AbstractEventLoop, TransportHost] = {}

Answer = tuple[int, dict[str, Any] | None]  # HTTP status, JSON body (None: no body)


def parse_token(token: str) -> tuple[str, str] | None:
    """``(host, sid)`` of a token this project signed, else None (forged, mangled)."""
    try:
        value = signing.Signer(salt=SALT).unsign(token)
    except signing.BadSignature:
        return None
    host, sep, sid = value.rpartition("~")
    return (host, sid) if sep and host and sid else None


async def reach(token: str) -> tuple[TransportHost, str, str] | None:
    """This loop's host, the session's host and the session id of ``token``; None when
    the token is not one this project signed (answered 410)."""
    target = parse_token(token)
    if target is None:
        return None
    return await current_host(), *target


class TransportHost:
    """The sessions of one event loop, and its transport channel (``name``) if a layer is
    configured."""

    def __init__(self, layer: Any, name: str) -> None:
        self.layer = layer
        self.name = name
        self.sessions: dict[str, Session] = {}
        self._rids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Answer]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.reader: asyncio.Task[None] | None = None
        if layer is not None:
            self.reader = asyncio.get_running_loop().create_task(
                self._read(), name="switchboard-transport-host"
            )

    # -- local sessions --------------------------------------------------------------------

    def new_session(
        self, transport: str, scope: dict[str, Any], settings: TransportSettings
    ) -> Session:
        sid = secrets.token_urlsafe(16)
        session = Session(sid, transport, scope, settings)
        # A signer per use: SECRET_KEY is read now (settings may change, as in tests).
        session.token = signing.Signer(salt=SALT).sign(f"{self.name}~{sid}")
        session.on_free = self._forget
        self.sessions[sid] = session
        return session

    def _forget(self, session: Session) -> None:
        if self.sessions.get(session.sid) is session:
            del self.sessions[session.sid]

    def send_local(self, sid: str, frames: list[Any], close: bool) -> Answer:
        session = self.sessions.get(sid)
        if session is None or not session.deliver(frames):
            return 410, {"error": "session gone"}
        if close:
            session.lost(1000, "closed by client")
        return 204, None

    async def poll_local(self, sid: str, ack: int, timeout: float) -> Answer:
        session = self.sessions.get(sid)
        if session is None or session.transport != "poll":
            return 410, {"error": "session gone"}
        return 200, await session.poll(ack, timeout)

    # -- forwarding ------------------------------------------------------------------------

    async def forward(self, host: str, message: dict[str, Any], wait: float) -> Answer:
        """Send ``message`` to the process whose transport channel is ``host``; its answer."""
        if self.layer is None or host == NO_HOST:
            return 410, {"error": "session gone"}
        rid = next(self._rids)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            await self.layer.send(host, {**message, "reply": self.name, "rid": rid})
            return await asyncio.wait_for(future, wait)
        except Exception as exc:  # no answer in time, or the layer refused (full, too big)
            logger.info("Transport request to %s got no answer (%s)", host, exc)
            return 410, {"error": "session unreachable"}
        finally:
            self._pending.pop(rid, None)

    async def _read(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.name)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Transport channel %s: receive failed", self.name)
                await asyncio.sleep(1)
                continue
            kind = message.get("type")
            if kind == "sbt.reply":
                future = self._pending.get(message.get("rid", -1))
                if future is not None and not future.done():
                    future.set_result((int(message["status"]), message.get("body")))
            elif kind in ("sbt.send", "sbt.poll"):
                task = asyncio.get_running_loop().create_task(self._answer(message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _answer(self, message: dict[str, Any]) -> None:
        sid = str(message.get("sid", ""))
        try:
            if message["type"] == "sbt.send":
                status, body = self.send_local(
                    sid, list(message.get("frames") or ()), bool(message.get("close"))
                )
            else:
                session = self.sessions.get(sid)
                timeout = session.settings.poll_timeout if session is not None else 0.0
                status, body = await self.poll_local(sid, int(message.get("ack") or 0), timeout)
            reply = {"type": "sbt.reply", "rid": message["rid"], "status": status, "body": body}
            await self.layer.send(message["reply"], reply)
        except Exception:
            logger.exception("Transport channel %s: could not answer %s", self.name, sid)

    def going_away(self) -> None:
        """End every session of this host: the server is shutting down."""
        for session in list(self.sessions.values()):
            session.going_away()

    def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        for task in list(self._tasks):
            task.cancel()


async def current_host() -> TransportHost:
    """The host of the running event loop, made on first use (again if the default layer
    was replaced, as tests do between cases)."""
    loop = asyncio.get_running_loop()
    layer = get_channel_layer()
    host = _hosts.get(loop)
    if host is not None and host.layer is layer:
        return host
    for old_loop in [old for old in _hosts if old.is_closed()]:
        del _hosts[old_loop]
    if host is not None:
        host.close()
    name = await layer.new_channel("sbt") if layer is not None else NO_HOST
    # Another request may have made it meanwhile (new_channel can wait).
    again = _hosts.get(loop)
    if again is not None and again.layer is layer:
        return again
    host = TransportHost(layer, name)
    _hosts[loop] = host
    add_shutdown_hook(_going_away)
    return host


def _going_away() -> None:
    """Server shutdown (switchboard.server.runtime.shutdown_hooks): end the sessions of the
    loop shutting down, so their clients reconnect to another process at once."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    host = _hosts.get(loop)
    if host is not None:
        host.going_away()
