"""Closing a connection so that the client reads the last response (RFC 9112 section 9.6).

Closed with bytes from the client still unread, a TCP socket sends a reset rather than a FIN,
and the reset discards what the kernel had not sent yet and can destroy what the client had
not read yet: the rest of pipelined responses, the 400 after them, a GOAWAY. So the close is
staged: the write side first (FIN once everything written has gone out), then what the client
still sends is read and dropped (the protocol ignores input once it is closing) until the
client closes too, for ``LINGER`` seconds at most after the FIN.
"""

from __future__ import annotations

import asyncio

__all__ = ["LINGER", "close_in_stages"]

LINGER = 2.0


def close_in_stages(
    transport: asyncio.Transport,
    loop: asyncio.AbstractEventLoop,
    *,
    give_up_after: float | None = None,
) -> None:
    """Close ``transport`` in stages where it can half-close (not TLS), else at once.

    A slow client still gets everything written (the FIN waits for it, as a plain close
    would); ``give_up_after`` bounds that wait, for a client known not to read.
    """
    if transport.is_closing():
        return
    if transport.can_write_eof():
        try:
            transport.write_eof()
        except OSError:  # the connection is gone already (reset by the client)
            transport.abort()
            return
        if not transport.is_reading():
            transport.resume_reading()  # drained, the client's send can end and it can read
        _linger(transport, loop)
    else:
        transport.close()
    if give_up_after is not None:
        loop.call_later(give_up_after, transport.abort)


def _linger(transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
    if transport.is_closing():
        return  # the client closed its side: done
    if transport.get_write_buffer_size():
        loop.call_later(LINGER, _linger, transport, loop)  # the FIN has not gone out yet
    else:
        loop.call_later(LINGER, transport.abort)
