"""TLS certificates made at test time and a raw HTTP/2 client on the ``h2`` library.

The certificates (a throwaway CA, a server certificate for 127.0.0.1/localhost, a client
certificate for mutual TLS) are written to a temporary directory; no key is ever committed.
"""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hyperframe.frame import Frame, GoAwayFrame


@dataclass
class Certs:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def client_context(self, *, with_client_cert: bool = False, alpn: list[str] | None = None):
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if with_client_cert:
            ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        if alpn:
            ctx.set_alpn_protocols(alpn)
        return ctx


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Switchboard tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def _write_key(key: Any, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _issue(
    subject: str, key: Any, ca_key: Any, ca_name: x509.Name | None, *, server: bool, ca: bool
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(ca_name or _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        # Key identifiers: Python 3.13's default context verifies strictly (VERIFY_X509_STRICT,
        # RFC 5280 section 4.2.1.1) and refuses a chain without them.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if server:
        import ipaddress

        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256())


def make_certs(directory: Path) -> Certs:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue("Switchboard test CA", ca_key, ca_key, None, server=False, ca=True)
    certs = Certs(
        directory,
        directory / "ca.pem",
        directory / "server.pem",
        directory / "server.key",
        directory / "client.pem",
        directory / "client.key",
    )
    certs.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    reissue_server_cert(certs, ca_key=ca_key, ca_cert=ca_cert)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _issue("test client", client_key, ca_key, ca_cert.subject, server=False, ca=False)
    certs.client_cert.write_bytes(client.public_bytes(serialization.Encoding.PEM))
    _write_key(client_key, certs.client_key)
    certs._ca_key = ca_key  # type: ignore[attr-defined]
    certs._ca_cert = ca_cert  # type: ignore[attr-defined]
    return certs


def reissue_server_cert(
    certs: Certs, *, ca_key: Any = None, ca_cert: Any = None, common: str = "localhost"
) -> x509.Certificate:
    """A fresh server certificate (new serial number) in place of the old files."""
    ca_key = ca_key or certs._ca_key  # type: ignore[attr-defined]
    ca_cert = ca_cert or certs._ca_cert  # type: ignore[attr-defined]
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _issue(common, key, ca_key, ca_cert.subject, server=True, ca=False)
    tmp_cert = certs.server_cert.with_suffix(".pem.new")
    tmp_key = certs.server_key.with_suffix(".key.new")
    tmp_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, tmp_key)
    os.replace(tmp_key, certs.server_key)
    os.replace(tmp_cert, certs.server_cert)
    return cert


def peer_serial(port: int, certs: Certs) -> int:
    """The serial number of the certificate the server presents now."""
    ctx = certs.client_context()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


class RawH2:
    """A blocking HTTP/2 client connection that sends whatever a test tells it to: the ``h2``
    state machine for the well-formed parts, raw frame bytes for the rest."""

    def __init__(
        self, port: int, *, settings: dict[int, int] | None = None, source: str | None = None
    ) -> None:
        # ``source``: another loopback address to connect from (127.0.0.2...), another client.
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=10, source_address=(source, 0) if source else None
        )
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.conn.initiate_connection()
        self.flush()
        self.events: list[h2.events.Event] = []
        self.closed = False
        self.auto_ack = True  # give window back for DATA as it arrives
        self.received = bytearray()  # everything the server sent, for goaway()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data: bytes) -> bool:
        """False once the server has closed the connection."""
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed = True
            return False
        return True

    def read(self, timeout: float = 5.0) -> list[h2.events.Event]:
        """Events from what arrives within ``timeout`` (returns early once something did)."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return []
        except OSError:
            self.closed = True
            return []
        if not data:
            self.closed = True
            return []
        self.received += data
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            events = []
        if self.auto_ack:
            for e in events:
                if isinstance(e, h2.events.DataReceived) and e.flow_controlled_length:
                    try:
                        self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                    except h2.exceptions.H2Error:
                        pass
        self.flush_quietly()
        self.events.extend(events)
        return events

    def flush_quietly(self) -> None:
        try:
            self.flush()
        except OSError:
            self.closed = True

    def read_until(self, predicate: Any, timeout: float = 10.0) -> list[h2.events.Event]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.closed:
            self.read(min(1.0, max(deadline - time.monotonic(), 0.01)))
            if predicate(self.events):
                return self.events
        return self.events

    def request(
        self, path: str = "/", *, method: str = "GET", end: bool = True, flush: bool = True
    ) -> int:
        """Open a stream with a request for ``path``; ``flush=False`` leaves it queued in
        ``conn.data_to_send()`` for the caller to send."""
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(
            sid,
            [
                (b":method", method.encode()),
                (b":scheme", b"http"),
                (b":authority", b"localhost"),
                (b":path", path.encode()),
            ],
            end_stream=end,
        )
        if flush:
            self.flush()
        return sid

    def request_then_cancel(self, path: str) -> int:
        """Queue a request and its RST_STREAM (CANCEL) at once, as a rapid-reset client does."""
        sid = self.request(path, flush=False)
        self.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
        return sid

    def response(self, sid: int, timeout: float = 10.0) -> tuple[dict[bytes, bytes], bytes]:
        """Headers and body of stream ``sid`` once it has ended."""
        if not self.auto_ack:  # give back what was held, and from now on as it comes
            self.auto_ack = True
            for e in self.events:
                if isinstance(e, h2.events.DataReceived) and e.stream_id == sid:
                    self.conn.acknowledge_received_data(e.flow_controlled_length, sid)
            self.flush_quietly()

        def ended(events: list[Any]) -> bool:
            return any(
                isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)) and e.stream_id == sid
                for e in events
            )

        events = self.read_until(ended, timeout)
        headers: dict[bytes, bytes] = {}
        body = b""
        for e in events:
            if getattr(e, "stream_id", None) != sid:
                continue
            if isinstance(e, h2.events.ResponseReceived):
                headers = dict(e.headers)
            elif isinstance(e, h2.events.DataReceived):
                body += e.data
        return headers, body

    def goaway(self) -> GoAwayFrame | None:
        """The server's first GOAWAY, read off the raw bytes: h2's client state machine stops
        reporting anything once a frame it dislikes arrives."""
        data = bytes(self.received)
        pos = 0
        while pos + 9 <= len(data):
            frame, length = Frame.parse_frame_header(memoryview(data[pos : pos + 9]))
            if pos + 9 + length > len(data):
                break
            if isinstance(frame, GoAwayFrame):
                frame.parse_body(memoryview(data[pos + 9 : pos + 9 + length]))
                return frame
            pos += 9 + length
        return None

    def wait_closed(self, timeout: float = 10.0) -> bool:
        """True once the server has closed the TCP connection."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.read(0.5)
        return self.closed

    def close(self) -> None:
        self.sock.close()


def websocket_stream(
    client: RawH2, path: str, extra: list[tuple[bytes, bytes]] | tuple[()] = ()
) -> int:
    """Open a WebSocket over HTTP/2 (RFC 8441 extended CONNECT) on ``client``: its stream id."""
    sid = client.conn.get_next_available_stream_id()
    client.conn.send_headers(
        sid,
        [
            (b":method", b"CONNECT"),
            (b":protocol", b"websocket"),
            (b":scheme", b"http"),
            (b":path", path.encode()),
            (b":authority", b"localhost"),
            (b"sec-websocket-version", b"13"),
            (b"origin", b"http://localhost"),
            *extra,
        ],
    )
    client.flush()
    return sid


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")
