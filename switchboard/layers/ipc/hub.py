"""The directory hub: one process per runtime directory holds it, elected by a lock file.

It owns no message traffic. It keeps the authoritative :class:`ProcessTable` (which process has
members in which group, who receives which worker channel), tells every process each change so
their replicas follow, and parks messages for channels nobody receives yet.

Election: the process whose ``flock`` on ``hub.lock`` succeeds serves ``hub.sock``. The kernel
drops the lock when that process dies, however it dies (SIGKILL included), so another process
takes over; every process then announces its own groups and receivers again (HELLO), which
restores the table. A change that needs every replica updated (a process's first member of a
group, a new worker-channel receiver) is answered only once every connected process has
acknowledged it, so a ``group_send`` made anywhere after ``group_add`` returned reaches the
new member.

It also orders presence (presence.py: a table replicated to every process the same way) and
holds the history logs (history.py), answering requests over the same connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from switchboard.layers.codec import pack_value
from switchboard.layers.ipc import wire
from switchboard.layers.ipc.directory import Mailboxes, ProcessTable
from switchboard.layers.ipc.history import HubHistory
from switchboard.layers.ipc.presence import (
    DEFAULT_PRESENCE_TIMEOUT,
    Item,
    PresenceTable,
    pack_items,
    unpack_items,
)
from switchboard.layers.ipc.runtime import listen_unix, peer_is_us, remove_if_dead
from switchboard.layers.naming import process_token
from switchboard.layers.stores.presence import PresenceEntry

if TYPE_CHECKING:
    from collections.abc import Callable

    from switchboard.layers.drops import DropCounter

    # Broadcasts presence diffs (joins, leaves) from the hub's process.
    Announce = Callable[[list[Item], list[Item]], None]

__all__ = ["Hub", "try_lock"]

logger = logging.getLogger("switchboard.layers.ipc")

SWEEP_INTERVAL = 1.0
# Looking for a dead process's socket file: this many times, this many seconds apart.
REAP_ATTEMPTS = 10
REAP_DELAY = 0.2


def try_lock(path: str) -> int | None:
    """The hub lock's file descriptor if we got it (hold it open to stay the hub), else None.
    The file says which pid holds it, for operators (and tests)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class _Barrier:
    __slots__ = ("requester", "seq", "waiting")

    def __init__(self, requester: HubConnection, seq: int, waiting: set[HubConnection]) -> None:
        self.requester = requester
        self.seq = seq
        self.waiting = waiting


class HubConnection(asyncio.Protocol):
    """One process's control connection to the hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        # Unbounded: control frames carry a process's presence entries, all at once.
        self.reader = wire.FrameReader()
        self.transport: asyncio.Transport | None = None
        self.token: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is None or not peer_is_us(sock):
            logger.warning("IPC hub refused a connection from another user")
            transport.close()
            return
        self.hub.conns.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except wire.ProtocolError as exc:
            logger.warning("IPC hub: closing a connection that sent %s", exc)
            self.transport.close()  # type: ignore[union-attr]
            return
        for frame in frames:
            try:
                self.hub.handle(self, frame)
            except (ValueError, TypeError, IndexError) as exc:
                logger.warning("IPC hub: bad frame %r: %r", frame[:3], exc)
                self.transport.close()  # type: ignore[union-attr]
                return

    def connection_lost(self, exc: Exception | None) -> None:
        self.hub.lost(self)

    def write(self, frame: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(frame)


class Hub:
    """Serves ``hub.sock`` while holding the lock ``lock_fd``.

    ``presence``: the hosting process's replica, where a successor hub starts from;
    ``announce`` broadcasts the presence diffs only the hub knows of (deaths);
    ``presence_timeout``: how long inherited processes have to announce themselves again.
    """

    def __init__(
        self,
        directory: str,
        lock_fd: int,
        drops: DropCounter,
        presence: PresenceTable | None = None,
        announce: Announce | None = None,
        presence_timeout: float = DEFAULT_PRESENCE_TIMEOUT,
    ) -> None:
        self.directory = directory
        self.path = os.path.join(directory, "hub.sock")
        self.lock_fd: int | None = lock_fd
        self.drops = drops
        self.table = ProcessTable()
        self.mailboxes = Mailboxes()
        self.by_token: dict[str, HubConnection] = {}
        self.conns: set[HubConnection] = set()
        self.barriers: dict[int, _Barrier] = {}
        self._bseq = itertools.count(1)
        self.server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self.presence = presence if presence is not None else PresenceTable()
        self.announce: Announce = announce or (lambda joins, leaves: None)
        self.presence_timeout = presence_timeout
        # Processes known from the previous hub that have not said hello to this one yet.
        self.inherited = set(self.presence.tokens())
        self._inherited_timer: asyncio.TimerHandle | None = None
        self.history = HubHistory()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closing = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # We hold the lock: whatever socket file is there belongs to a dead hub.
        sock = listen_unix(self.path)
        self.server = await loop.create_unix_server(lambda: HubConnection(self), sock=sock)
        self._sweeper = loop.call_later(SWEEP_INTERVAL, self._sweep)
        if self.inherited:
            self._inherited_timer = loop.call_later(self.presence_timeout, self._expire_inherited)
        # Processes killed while no hub watched them (with the previous hub) left files.
        for name in os.listdir(self.directory):
            if name.startswith("n-") and name.endswith(".sock"):
                remove_if_dead(os.path.join(self.directory, name))
        logger.info("IPC channel layer hub started in process %d (%s)", os.getpid(), self.path)

    async def close(self) -> None:
        # The connections closed below are not processes leaving: the next hub inherits them.
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._inherited_timer is not None:
            self._inherited_timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self.server is not None:
            self.server.close()
            # Unlinked while we still hold the lock, so it never removes a successor's socket.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        retiring = wire.control(wire.RETIRING)
        for conn in list(self.conns):
            if conn.transport is not None:
                conn.write(retiring)
                conn.transport.close()
        if self.lock_fd is not None:
            os.close(self.lock_fd)  # releases the lock: another process takes over
            self.lock_fd = None

    # -- frames -----------------------------------------------------------------

    def handle(self, conn: HubConnection, frame: list[Any]) -> None:
        kind = frame[0]
        if kind == wire.HELLO:
            _, seq, token, _pid, groups, receivers, *rest = frame
            presence = unpack_items(rest[0]) if rest else []
            self._hello(conn, seq, token, groups, receivers, presence)
            return
        token = conn.token
        if token is None:
            raise ValueError("frame before HELLO")
        if kind == wire.ACK:
            self._acked(conn, frame[1])
        elif kind == wire.JOIN:
            _, seq, group = frame
            self.table.add(token, groups=(group,))
            self._broadcast_update(conn, seq, token, [group], [], replace=False)
        elif kind == wire.LEAVE:
            group = frame[1]
            self.table.leave(token, group)
            self._send_others(conn, wire.control(wire.LEFT, token, group))
        elif kind == wire.RECEIVE:
            _, seq, channel = frame
            self.table.add(token, receivers=(channel,))
            self._hand_over(conn, lambda name: name == channel)
            self._broadcast_update(conn, seq, token, [], [channel], replace=False)
        elif kind == wire.PARK:
            _, seq, channel, capacity, expires, message = frame
            self._park(conn, seq, channel, capacity, expires, message)
        elif kind == wire.FLUSH:
            settled: dict[tuple[str, str], int] = {}
            for channel, parked in self.mailboxes.clear():
                for _expires, _message, sender in parked:
                    settled[(sender, channel)] = settled.get((sender, channel), 0) + 1
            self._settle(settled)
            self.history.clear()
            conn.write(wire.control(wire.OK, frame[1]))
        elif kind == wire.TRACK:
            _, seq, topic, ref, key, meta = frame
            self.presence.put(token, topic, PresenceEntry(ref, key, meta))
            tracked = (wire.TRACKED, token, topic, ref, key, meta)
            self._barrier(conn, seq, lambda bseq: wire.control(tracked[0], bseq, *tracked[1:]))
        elif kind == wire.UNTRACK:
            _, seq, topic, ref = frame
            self.presence.drop(topic, ref)
            self._barrier(conn, seq, lambda bseq: wire.control(wire.UNTRACKED, bseq, topic, ref))
        elif kind in (wire.APPEND, wire.RECOVER, wire.LATEST):
            # Answered in arrival order: the store's coroutines never wait.
            task = asyncio.get_running_loop().create_task(self._history(conn, frame))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            raise ValueError(f"unknown frame kind {kind}")

    def _hello(
        self,
        conn: HubConnection,
        seq: int,
        token: str,
        groups: list[str],
        receivers: list[str],
        presence: list[Item],
    ) -> None:
        conn.token = token
        old = self.by_token.get(token)
        self.by_token[token] = conn
        if old is not None and old is not conn:
            old.token = None  # a new event loop of that process replaced it
        # The newcomer's replica: everybody else as known now (later changes follow).
        for other in self.table.tokens():
            if other != token:
                other_groups, other_receivers = self.table.of(other)
                conn.write(
                    wire.control(
                        wire.UPDATE, 0, other, list(other_groups), list(other_receivers), True
                    )
                )
        self.table.set(token, groups, receivers)
        self._hello_presence(conn, token, presence)
        wanted = set(receivers)
        self._hand_over(conn, lambda name: process_token(name) == token or name in wanted)
        self._broadcast_update(conn, seq, token, groups, receivers, replace=True)

    def _hello_presence(self, conn: HubConnection, token: str, presence: list[Item]) -> None:
        """The newcomer's replica gets everyone's entries; everyone gets the newcomer's (before
        the UPDATE whose acknowledgements answer the HELLO, so they are in place by then)."""
        self.inherited.discard(token)
        for other in self.presence.tokens():
            if other != token:
                items = pack_items(self.presence.of(other))
                conn.write(wire.control(wire.PRESENCE, 0, other, items))
        had = bool(self.presence.of(token))
        new = self.presence.set(token, presence)
        if presence or had:
            self._send_others(conn, wire.control(wire.PRESENCE, 0, token, pack_items(presence)))
        if new:
            # Back after being declared gone (or tracked while the previous hub died): joins
            # again. A repeated join changes nothing at the receivers.
            self.announce(new, [])

    def _broadcast_update(
        self,
        conn: HubConnection,
        seq: int,
        token: str,
        groups: list[str],
        receivers: list[str],
        replace: bool,
    ) -> None:
        self._barrier(
            conn,
            seq,
            lambda bseq: wire.control(wire.UPDATE, bseq, token, groups, receivers, replace),
        )

    def _barrier(self, conn: HubConnection, seq: int, make: Callable[[int], bytes]) -> None:
        """Send every other process the frame ``make(bseq)``; answer ``seq`` once all ACK it."""
        others = {c for c in self.conns if c is not conn and c.token is not None}
        if not others:
            conn.write(wire.control(wire.OK, seq))
            return
        bseq = next(self._bseq)
        self.barriers[bseq] = _Barrier(conn, seq, others)
        frame = make(bseq)
        for other in others:
            other.write(frame)

    def _acked(self, conn: HubConnection, bseq: int) -> None:
        barrier = self.barriers.get(bseq)
        if barrier is not None:
            barrier.waiting.discard(conn)
            if not barrier.waiting:
                del self.barriers[bseq]
                barrier.requester.write(wire.control(wire.OK, barrier.seq))

    def _send_others(self, conn: HubConnection | None, frame: bytes) -> None:
        for other in self.conns:
            if other is not conn and other.token is not None:
                other.write(frame)

    def lost(self, conn: HubConnection) -> None:
        self.conns.discard(conn)
        for bseq, barrier in list(self.barriers.items()):
            if barrier.requester is conn:
                del self.barriers[bseq]
            elif conn in barrier.waiting:
                self._acked(conn, bseq)
        token = conn.token
        if token is not None and self.by_token.get(token) is conn and not self.closing:
            del self.by_token[token]
            self._gone(token, conn)
            self._reap(token, REAP_ATTEMPTS)

    def _gone(self, token: str, conn: HubConnection | None = None) -> None:
        """``token``'s process left: out of the tables and replicas, its leaves broadcast."""
        self.table.remove(token)
        left = self.presence.remove(token)
        self._send_others(conn, wire.control(wire.GONE, token))
        if left:
            self.announce([], left)

    def _expire_inherited(self) -> None:
        """Processes the previous hub knew that never came back are dead (the old hub's own
        among them): their entries go, their leaves are broadcast once, from here."""
        self._inherited_timer = None
        for token in list(self.inherited):
            if token not in self.by_token:
                self._gone(token)
        self.inherited.clear()

    async def _history(self, conn: HubConnection, frame: list[Any]) -> None:
        try:
            payload = await self.history.answer(frame)
        except (ValueError, TypeError, IndexError) as exc:
            logger.warning("IPC hub: bad history request %r: %r", frame[:3], exc)
            if conn.transport is not None:
                conn.transport.close()
            return
        conn.write(wire.control(wire.REPLY, frame[1], payload))

    def _reap(self, token: str, attempts: int) -> None:
        """Remove the socket file a process killed outright leaves behind. A dying process
        closes its files one by one, so its listener may still answer a moment after its hub
        connection ended: look again a little later, unless the token came back (a new event
        loop of that process listens there again)."""
        if token in self.by_token or self.lock_fd is None:
            return  # back, or we are no longer the hub
        if remove_if_dead(os.path.join(self.directory, f"n-{token}.sock")) or attempts <= 1:
            return
        asyncio.get_running_loop().call_later(REAP_DELAY, self._reap, token, attempts - 1)

    # -- parked messages --------------------------------------------------------

    def _receiver_of(self, channel: str) -> HubConnection | None:
        token = process_token(channel)
        if token is not None:
            return self.by_token.get(token)
        for candidate in self.table.receivers.get(channel, ()):
            conn = self.by_token.get(candidate)
            if conn is not None:
                return conn
        return None

    def _park(
        self,
        conn: HubConnection,
        seq: int,
        channel: str,
        capacity: int,
        expires: float,
        message: Any,
    ) -> None:
        target = self._receiver_of(channel)
        if target is not None:
            # Registered meanwhile (the sender's replica lagged): pass it on.
            target.write(wire.msg_frame(channel, expires, pack_value(message)))
            conn.write(wire.control(wire.OK, seq))
            return
        now = time.time()
        if expires <= now:
            self.drops.note("expired", channel)
            conn.write(wire.control(wire.OK, seq))
            return
        stored = self.mailboxes.park(channel, capacity, expires, message, conn.token or "")
        conn.write(wire.control(wire.OK if stored else wire.FULL, seq))

    def _hand_over(self, conn: HubConnection, match: Callable[[str], bool]) -> None:
        settled: dict[tuple[str, str], int] = {}
        now = time.time()
        for channel, parked in self.mailboxes.take(match):
            for expires, message, sender in parked:
                if expires > now:
                    conn.write(wire.msg_frame(channel, expires, pack_value(message)))
                else:
                    self.drops.note("expired", channel)
                settled[(sender, channel)] = settled.get((sender, channel), 0) + 1
        self._settle(settled)

    def _settle(self, settled: dict[tuple[str, str], int]) -> None:
        for (sender, channel), count in settled.items():
            conn = self.by_token.get(sender)
            if conn is not None:
                conn.write(wire.control(wire.SETTLED, channel, count))

    def _sweep(self) -> None:
        settled: dict[tuple[str, str], int] = {}
        for channel, expired in self.mailboxes.expire(time.time()):
            self.drops.note("expired", channel, count=len(expired))
            for _expires, _message, sender in expired:
                settled[(sender, channel)] = settled.get((sender, channel), 0) + 1
        self._settle(settled)
        self._sweeper = asyncio.get_running_loop().call_later(SWEEP_INTERVAL, self._sweep)
