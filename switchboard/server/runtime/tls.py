"""TLS for the server: the SSL context built from the ``ssl_*`` options, the listener that runs
each handshake under a deadline, certificate reload on SIGHUP, and the ASGI ``tls`` extension of
each connection's scopes.

ALPN offers ``h2`` (when HTTP/2 is on) and ``http/1.1``; the HTTP/1.1 protocol hands a
connection that chose ``h2`` over to the HTTP/2 one (``connections/h2/handover.py``).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("switchboard.server")

# Accepting fails for want of file descriptors or memory: wait this long before trying again.
ACCEPT_RETRY_DELAY = 1.0
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

# ssl.SSLObject.version() -> the 16-bit protocol version of the ASGI tls extension.
TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


class TLSConfigError(ValueError):
    """The certificate, key or CA files cannot be used."""


def tls_enabled(config: Any) -> bool:
    return bool(config.ssl_certfile)


def _load(ctx: ssl.SSLContext, config: Any) -> None:
    ctx.load_cert_chain(config.ssl_certfile, config.ssl_keyfile, config.ssl_keyfile_password)
    if config.ssl_ca_certs:
        ctx.load_verify_locations(config.ssl_ca_certs)


def create_ssl_context(config: Any) -> ssl.SSLContext | None:
    """The server-side context for ``config``, or None without ``ssl_certfile``.

    Raises :class:`TLSConfigError` for unreadable or mismatched files, or bad options.
    """
    if not tls_enabled(config):
        return None
    if not config.ssl_handshake_timeout > 0:
        raise TLSConfigError(
            f"ssl_handshake_timeout must be a positive number of seconds, "
            f"not {config.ssl_handshake_timeout!r}"
        )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # HTTP/2 over TLS needs TLS 1.2 or later (RFC 9113 section 9.2).
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if config.ssl_ciphers:
            ctx.set_ciphers(config.ssl_ciphers)
        ctx.verify_mode = ssl.VerifyMode(config.ssl_cert_reqs)
        _load(ctx, config)
        _remember_server_cert(ctx, config.ssl_certfile)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise TLSConfigError(f"Cannot set up TLS: {exc}") from exc
    ctx.set_alpn_protocols(["h2", "http/1.1"] if config.http2 else ["http/1.1"])
    return ctx


class TLSServer:
    """Accepts connections on a listening socket and runs each TLS handshake, for at most
    ``handshake_timeout`` seconds.

    asyncio's own TLS server calls the protocol only once a handshake is over, and never when
    it fails, so a connection in its handshake would be invisible to ``--limit-concurrency``.
    Here a connection counts (its protocol is in ``connections``) from the moment it is
    accepted until its handshake fails, or, once it succeeded, until the protocol lets go.
    A connection accepted with ``limit`` connections open is closed before any handshake:
    a 503 would cost the very handshake the limit is there to spare.

    The parts of ``asyncio.Server`` the server uses: ``sockets``, ``close``, ``wait_closed``.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        factory: Callable[[], asyncio.BaseProtocol],
        sock: socket.socket,
        ctx: ssl.SSLContext,
        handshake_timeout: float,
        connections: set[Any],
        limit: int | None = None,
    ) -> None:
        self._loop = loop
        self._factory = factory
        self._sock: socket.socket | None = sock
        self._ctx = ctx
        self._timeout = handshake_timeout
        self._connections = connections
        self._limit = limit
        self._handshakes: set[asyncio.Task[None]] = set()
        self._accepting = loop.create_task(self._accept(sock))
        # Closed once the accept loop has unwound (and sock_accept removed its reader).
        self._accepting.add_done_callback(lambda _: sock.close())

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return () if self._sock is None else (self._sock,)

    def close(self) -> None:
        """Stop accepting (the listening socket closes), and end the handshakes in progress."""
        self._sock = None
        self._accepting.cancel()
        for task in self._handshakes:
            task.cancel()

    async def wait_closed(self) -> None:
        await asyncio.gather(self._accepting, *self._handshakes, return_exceptions=True)

    async def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = await self._loop.sock_accept(sock)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                continue  # the client gave up before we took it
            except OSError as exc:
                level = logging.ERROR if exc.errno in _OUT_OF_RESOURCES else logging.WARNING
                logger.log(level, "Cannot accept a connection: %s", exc)
                await asyncio.sleep(ACCEPT_RETRY_DELAY)
                continue
            limit = self._limit
            if limit is not None and len(self._connections) >= limit:
                conn.close()
                continue
            # Counted now, not when its task first runs: the accepts queued behind this one
            # may be taken before that.
            protocol = self._factory()
            self._connections.add(protocol)
            task = self._loop.create_task(self._handshake(conn, protocol))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, conn: socket.socket, protocol: asyncio.BaseProtocol) -> None:
        """Run the handshake; on success the protocol has had connection_made (and counts
        itself from now on), on failure the connection is closed and no longer counted."""
        try:
            await self._loop.connect_accepted_socket(
                lambda: protocol, conn, ssl=self._ctx, ssl_handshake_timeout=self._timeout
            )
        except BaseException as exc:
            # A protocol whose handshake ended early never hears of it: uncount it here.
            # (Cancelled after a success, it is closed and uncounts itself too: harmless.)
            self._connections.discard(protocol)
            if not isinstance(exc, Exception):
                raise
            logger.debug("TLS handshake failed: %r", exc)


def reload_certificates(ctx: ssl.SSLContext, config: Any) -> bool:
    """Load the certificate files again into the live context (SIGHUP): new connections get
    them, open ones keep theirs. Files that do not load are logged and the old ones kept."""
    try:
        # Tried on a scratch context first: a failed load_cert_chain may leave the live one
        # with a certificate that does not match its key.
        _load(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), config)
        _load(ctx, config)
    except (OSError, ssl.SSLError) as exc:
        logger.error("TLS certificates not reloaded, keeping the old ones: %s", exc)
        return False
    _remember_server_cert(ctx, config.ssl_certfile)
    logger.info("TLS certificates reloaded from %s", config.ssl_certfile)
    return True


def _remember_server_cert(ctx: ssl.SSLContext, certfile: str) -> None:
    """Keep the PEM of the server's own certificate on its context (the tls extension's
    ``server_cert``)."""
    with open(certfile, encoding="ascii", errors="replace") as f:
        text = f.read()
    end = "-----END CERTIFICATE-----"
    start = text.find("-----BEGIN CERTIFICATE-----")
    stop = text.find(end, max(start, 0))
    pem = text[start : stop + len(end)] + "\n" if 0 <= start < stop else None
    ctx.switchboard_server_cert = pem  # type: ignore[attr-defined]


_cipher_ids: dict[str, int] = {}


def cipher_suite_id(ctx: ssl.SSLContext, name: str) -> int | None:
    """The IANA number of an OpenSSL cipher name (OpenSSL's ids carry it in the low 16 bits)."""
    if not _cipher_ids:
        for cipher in ctx.get_ciphers():
            _cipher_ids[cipher["name"]] = cipher["id"] & 0xFFFF
    return _cipher_ids.get(name)


def _rfc4514_name(der: bytes, fields: dict[str, Any] | None) -> str | None:
    try:
        from cryptography import x509
    except ImportError:  # the crypto extra is optional: rebuild it from the ssl module's dict
        if not fields or "subject" not in fields:
            return None
        short = {
            "commonName": "CN",
            "organizationName": "O",
            "organizationalUnitName": "OU",
            "countryName": "C",
            "stateOrProvinceName": "ST",
            "localityName": "L",
            "domainComponent": "DC",
            "userId": "UID",
        }
        # RFC 4514 section 2.1: the RDNs in reverse order of the encoding.
        return ",".join(
            "+".join(f"{short.get(k, k)}={_escape(v)}" for k, v in rdn)
            for rdn in reversed(fields["subject"])
        )
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


def _escape(value: str) -> str:
    out = "".join("\\" + c if c in ',+"\\<>;=' else c for c in value)
    if out[:1] in ("#", " "):
        out = "\\" + out
    if out.endswith(" "):
        out = out[:-1] + "\\ "
    return out


def tls_extension(transport: Any) -> dict[str, Any] | None:
    """The ASGI ``tls`` extension for a connection, or None when it is not TLS.

    ``client_cert_chain`` holds the client's own certificate only: the ssl module of the
    Pythons we support does not expose the rest of the chain the client sent.
    """
    sslobj: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
    if sslobj is None:
        return None
    ctx = sslobj.context
    der = sslobj.getpeercert(binary_form=True)
    chain: list[str] = []
    name = None
    if der:
        chain.append(ssl.DER_cert_to_PEM_cert(der))
        name = _rfc4514_name(der, sslobj.getpeercert())
    cipher = sslobj.cipher()
    version = sslobj.version()
    return {
        "server_cert": getattr(ctx, "switchboard_server_cert", None),
        "client_cert_chain": chain,
        "client_cert_name": name,
        # A certificate that fails verification fails the handshake: no connection to report.
        "client_cert_error": None,
        "tls_version": TLS_VERSIONS.get(version) if version else None,
        "cipher_suite": cipher_suite_id(ctx, cipher[0]) if cipher else None,
    }
