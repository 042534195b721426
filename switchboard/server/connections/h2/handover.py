"""How a connection accepted as HTTP/1.1 becomes an HTTP/2 one: ALPN chose ``h2`` during the
TLS handshake, or the client opened with the HTTP/2 connection preface in the clear (h2c with
prior knowledge, RFC 9113 section 3.3). ``connections/http11.py`` calls these two hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from switchboard.server.connections.http11 import HttpProtocol

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def alpn_chose_h2(transport: Any) -> bool:
    sslobj = transport.get_extra_info("ssl_object")
    return sslobj is not None and sslobj.selected_alpn_protocol() == "h2"


def starts_with_preface(data: bytes) -> bool | None:
    """True for the HTTP/2 preface, False for anything else, None while ``data`` is too short
    to tell (a prefix of the preface: wait for more)."""
    if data[: len(PREFACE)] == PREFACE:
        return True
    if len(data) < len(PREFACE) and PREFACE.startswith(data):
        return None
    return False


def hand_over(http: HttpProtocol, data: bytes = b"") -> None:
    """Move the transport of the HTTP/1.1 protocol ``http`` (nothing parsed on it yet) to a new
    HTTP/2 protocol, which then reads ``data``, the bytes received so far."""
    from switchboard.server.connections.h2.protocol import H2Protocol

    transport = http.transport
    http.release_transport()
    h2 = H2Protocol(http.config, http.state, http.app_state, http.loop)
    transport.set_protocol(h2)
    h2.connection_made(transport)
    if data:
        h2.data_received(data)
