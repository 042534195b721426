"""A loopback TCP proxy for tests that need a network that misbehaves on purpose.

Every connection accepted on the listening port is piped, byte for byte, to the target. On
top of that:

- ``refuse_websocket``: the proxy reads the request head of each connection's *first* request;
  a WebSocket upgrade (an ``Upgrade: websocket`` header) is answered ``HTTP/1.1 400`` and
  closed, as by a proxy or firewall that does not let WebSockets through. Anything else is
  piped both ways, later keep-alive requests on that connection included, uninspected
  (browsers open every WebSocket on a connection of its own, so this is enough).
- ``cut()``: closes every piped connection now (both sides see it end at once).
- ``refuse_for(seconds)``: cuts, then resets every new connection for ``seconds``; and
  ``cut_every(every, down)``: that, every ``every`` seconds for ``down`` seconds.

Three ways to run it: :class:`TcpProxy` in the test's event loop; :func:`proxy_thread` in a
thread of its own, for synchronous tests (Selenium); or as a subprocess::

    python -m tests.support.tcp_proxy --listen PORT --target HOST:PORT
        [--refuse-websocket] [--cut-every 5 --cut-for 2]

which prints ``listening on HOST:PORT`` once it accepts connections, cuts on ``SIGUSR1`` and
exits on ``SIGTERM``/``SIGINT``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

MAX_HEAD = 65536  # bytes of request head read before giving up and piping as is
_UPGRADE_WEBSOCKET = re.compile(rb"^upgrade:[ \t]*websocket[ \t]*$", re.I | re.M)
_REFUSAL_BODY = b"no WebSockets past here\n"
REFUSAL = (
    b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_REFUSAL_BODY), _REFUSAL_BODY)
)


def is_websocket_upgrade(head: bytes) -> bool:
    """True when an HTTP request head (up to its blank line) asks for a WebSocket."""
    return _UPGRADE_WEBSOCKET.search(head.replace(b"\r\n", b"\n")) is not None


def _reset(writer: asyncio.StreamWriter) -> None:
    # Linger 0: close() sends a RST, the peer sees a reset rather than an orderly end.
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class TcpProxy:
    """The proxy in the running event loop: ``await TcpProxy(...).start()``, ``await close()``."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        refuse_websocket: bool = False,
    ) -> None:
        self.target = (target_host, target_port)
        self.host, self.port = host, port
        self.refuse_websocket = refuse_websocket
        self.accepted = self.refused_websockets = self.reset = self.cuts = 0
        self._pipes: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._refuse_until = 0.0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._server is not None:
            self._server.close()
        self.cut()
        if self._server is not None:
            await self._server.wait_closed()

    def cut(self) -> int:
        """Closes every piped connection now; how many there were."""
        pipes, self._pipes = self._pipes, set()
        for client, upstream in pipes:
            _reset(client)
            _reset(upstream)
        self.cuts += 1
        return len(pipes)

    def refuse_for(self, seconds: float) -> int:
        """Cuts, and resets every connection accepted in the next ``seconds``."""
        self._refuse_until = asyncio.get_running_loop().time() + seconds
        return self.cut()

    def cut_every(self, every: float, down: float) -> None:
        """From now on, every ``every`` s: cut, then refuse for ``down`` s."""

        async def schedule() -> None:
            while True:
                await asyncio.sleep(every)
                self.refuse_for(down)

        task = asyncio.get_running_loop().create_task(schedule())
        self._tasks.add(task)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if asyncio.get_running_loop().time() < self._refuse_until:
            self.reset += 1
            _reset(writer)
            return
        self.accepted += 1
        head = b""
        if self.refuse_websocket:
            # The first request's head only; a head that never ends is piped as it is.
            with suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
                head = await reader.readuntil(b"\r\n\r\n")
            if is_websocket_upgrade(head):
                self.refused_websockets += 1
                with suppress(OSError):
                    writer.write(REFUSAL)
                    await writer.drain()
                writer.close()
                return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        pipe = (writer, up_writer)
        self._pipes.add(pipe)
        try:
            if head:
                up_writer.write(head)
            await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
        finally:
            if pipe in self._pipes:  # not cut: ended by one side
                self._pipes.discard(pipe)
                writer.close()
                up_writer.close()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One direction until its end (then passed on as a half-close) or an error."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, RuntimeError):  # reset, or the other side already gone
        writer.transport.abort()


class ProxyThread:
    """A :class:`TcpProxy` running in a thread of its own; its methods are thread-safe."""

    def __init__(self, proxy: TcpProxy, loop: asyncio.AbstractEventLoop) -> None:
        self.proxy, self._loop = proxy, loop

    @property
    def port(self) -> int:
        return self.proxy.port

    def _call(self, fn: Callable[..., int], *args: float) -> int:
        async def call() -> int:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(10)

    def cut(self) -> int:
        return self._call(self.proxy.cut)

    def refuse_for(self, seconds: float) -> int:
        return self._call(self.proxy.refuse_for, seconds)


@contextmanager
def proxy_thread(
    target_host: str, target_port: int, *, refuse_websocket: bool = False
) -> Iterator[ProxyThread]:
    """``with proxy_thread("127.0.0.1", port, refuse_websocket=True) as proxy:`` then
    ``proxy.port``, ``proxy.cut()``; the proxy and its thread stop on exit."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="tcp-proxy", daemon=True)
    thread.start()
    proxy = TcpProxy(target_host, target_port, refuse_websocket=refuse_websocket)
    try:
        asyncio.run_coroutine_threadsafe(proxy.start(), loop).result(10)
        yield ProxyThread(proxy, loop)
    finally:
        with suppress(Exception):
            asyncio.run_coroutine_threadsafe(proxy.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def _serve(args: argparse.Namespace) -> None:
    host, _, port = args.target.rpartition(":")
    proxy = TcpProxy(
        host.strip("[]") or "127.0.0.1",
        int(port),
        host=args.host,
        port=args.listen,
        refuse_websocket=args.refuse_websocket,
    )
    await proxy.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, proxy.cut)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.cut_every:
        proxy.cut_every(args.cut_every, args.cut_for)
    print(f"listening on {args.host}:{proxy.port}", flush=True)
    await stop.wait()
    await proxy.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.tcp_proxy")
    parser.add_argument("--listen", type=int, default=0, help="port to listen on (0: any)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--target", required=True, help="HOST:PORT to pipe connections to")
    parser.add_argument("--refuse-websocket", action="store_true")
    parser.add_argument("--cut-every", type=float, default=0, help="seconds between cuts")
    parser.add_argument("--cut-for", type=float, default=0, help="seconds refusing after a cut")
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
