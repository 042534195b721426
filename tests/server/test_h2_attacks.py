"""HTTP/2 attacks, each from a raw ``h2``-based client against a real server process: the
attacking connection is closed (or its cost bounded), the server's memory stays bounded, and
it goes on serving other clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h2.errors
import h2.settings
import hpack
import pytest
from hyperframe.frame import ContinuationFrame, HeadersFrame, PingFrame, SettingsFrame

from tests.server.h2_support import RawH2, rss_kib
from tests.server.serve_process import Serving, free_port

ENHANCE_YOUR_CALM = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
# What one attack may add to the server's resident memory.
MEMORY_BOUND_KIB = 48 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Serving, int]]:
    port = free_port()
    log = tmp_path_factory.mktemp("h2attacks") / "serve.log"
    serving = Serving(log, "tests.server.h2_apps:app", "--port", str(port), "--no-access-log")
    try:
        serving.wait_for("Listening on")
        yield serving, port
    finally:
        serving.stop()
        serving.close()


def still_serves(port: int) -> None:
    client = RawH2(port)
    try:
        headers, _ = client.response(client.request("/scope"))
        assert headers[b":status"] == b"200"
    finally:
        client.close()


def request_block(encoder: hpack.Encoder, sid: int, *extra: tuple[bytes, bytes]) -> bytes:
    return encoder.encode(
        [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":path", b"/slow?5"),
            (b":authority", b"localhost"),
            *extra,
        ]
    )


def attack(server: tuple[Serving, int], run) -> RawH2:  # type: ignore[no-untyped-def]
    serving, port = server
    still_serves(port)
    before = rss_kib(serving.process.pid)
    client = RawH2(port)
    try:
        run(client)
        client.wait_closed(15)
    finally:
        client.close()
    assert serving.process.poll() is None, serving.stderr
    still_serves(port)
    grown = rss_kib(serving.process.pid) - before
    assert grown < MEMORY_BOUND_KIB, f"server grew by {grown} KiB"
    return client


def test_rapid_reset_is_cut_off(server: tuple[Serving, int]) -> None:
    """CVE-2023-44487: open streams and reset them at once, so the server starts work the
    client never waits for. After a bounded number: GOAWAY ENHANCE_YOUR_CALM."""
    sent = 0

    def run(client: RawH2) -> None:
        nonlocal sent
        for _batch in range(100):
            for _ in range(50):
                sid = client.conn.get_next_available_stream_id()
                client.conn.send_headers(
                    sid,
                    [
                        (b":method", b"GET"),
                        (b":scheme", b"http"),
                        (b":path", b"/slow?5"),
                        (b":authority", b"localhost"),
                    ],
                    end_stream=True,
                )
                client.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                sent += 1
            if not client.send_raw(client.conn.data_to_send()):
                return
            client.read(0.01)
            if client.goaway() is not None or client.closed:
                return

    client = attack(server, run)
    goaway = client.goaway()
    assert goaway is not None and goaway.error_code == ENHANCE_YOUR_CALM
    assert sent < 5000  # cut off long before the client was done
    assert "rapid reset" in server[0].stderr


def test_continuation_flood_is_cut_off(server: tuple[Serving, int]) -> None:
    """A header block that never ends (CONTINUATION without END_HEADERS, CVE-2024-27316 and
    kin): the connection is closed after a bounded number of frames."""
    frames_sent = 0

    def run(client: RawH2) -> None:
        nonlocal frames_sent
        encoder = hpack.Encoder()
        first = HeadersFrame(1, data=request_block(encoder, 1))
        client.send_raw(first.serialize())
        junk = ContinuationFrame(1, data=b"\x00" * 16000).serialize()
        for _ in range(3000):  # 48 MB if nobody stopped it
            if not client.send_raw(junk):
                return
            frames_sent += 1
            if frames_sent % 20 == 0:
                client.read(0.01)
                if client.closed:
                    return

    client = attack(server, run)
    assert client.closed
    assert frames_sent < 3000


def test_hpack_bomb_is_refused(server: tuple[Serving, int]) -> None:
    """A few KiB of header block that decode to megabytes (one big field indexed once,
    referenced thousands of times): refused by the header list limit, connection closed."""

    def run(client: RawH2) -> None:
        encoder = hpack.Encoder()
        big = (b"x-bomb", b"a" * 4000)
        block = request_block(encoder, 1, *([big] * 3000))  # ~12 MB decoded
        assert len(block) < 16384
        client.send_raw(
            HeadersFrame(1, data=block, flags=["END_HEADERS", "END_STREAM"]).serialize()
        )
        client.read_until(lambda ev: client.goaway() is not None, 10)

    client = attack(server, run)
    goaway = client.goaway()
    assert goaway is not None and goaway.error_code != 0
    assert client.closed


@pytest.mark.parametrize("kind", ["settings", "ping"])
def test_settings_and_ping_floods_are_cut_off(server: tuple[Serving, int], kind: str) -> None:
    """Each SETTINGS or PING asks for a reply (CVE-2019-9515, CVE-2019-9512); a client that
    sends them without end gets a bounded number of replies and ENHANCE_YOUR_CALM."""
    if kind == "settings":
        frame = SettingsFrame(0).serialize()
    else:
        frame = PingFrame(0, opaque_data=b"12345678").serialize()
    sent = 0

    def run(client: RawH2) -> None:
        nonlocal sent
        for _ in range(200):
            if not client.send_raw(frame * 100):
                return
            sent += 100
            client.read(0.005)
            if client.goaway() is not None or client.closed:
                return

    client = attack(server, run)
    goaway = client.goaway()
    assert goaway is not None and goaway.error_code == ENHANCE_YOUR_CALM
    assert sent < 20000
    assert f"{kind.upper()} flood" in server[0].stderr


def test_streams_beyond_the_advertised_maximum_end_the_connection(
    server: tuple[Serving, int], tmp_path: Path
) -> None:
    """More open streams than SETTINGS_MAX_CONCURRENT_STREAMS (100) is a protocol error
    (RFC 9113 section 5.1.2): the connection goes, the server stays."""

    def run(client: RawH2) -> None:
        encoder = hpack.Encoder()
        data = b"".join(
            HeadersFrame(
                sid, data=request_block(encoder, sid), flags=["END_HEADERS", "END_STREAM"]
            ).serialize()
            for sid in range(1, 2 * 150, 2)
        )
        client.send_raw(data)
        client.read_until(lambda ev: client.goaway() is not None, 10)

    client = attack(server, run)
    goaway = client.goaway()
    assert goaway is not None and goaway.error_code != 0


def test_a_huge_advertised_header_table_does_not_grow_the_encoders(
    server: tuple[Serving, int],
) -> None:
    """A client may advertise SETTINGS_HEADER_TABLE_SIZE up to 2^32-1; with a response field
    no two responses share (a request id), a server that took it at its word would keep every
    one and search them all on each response. RFC 7541 section 4.2 lets the encoder use less
    than the peer allows: ours stays at the protocol's 4096 octets. The client's own decoder
    mirrors the server's encoder table, so its size is what the server keeps."""
    _, port = server
    client = RawH2(port, settings={h2.settings.SettingCodes.HEADER_TABLE_SIZE: 2**31 - 1})
    try:
        client.conn.decoder.max_allowed_table_size = 2**31 - 1
        ids = set()
        for _ in range(200):
            headers, body = client.response(client.request("/unique"))
            assert headers[b":status"] == b"200" and body == b"ok"
            ids.add(headers[b"x-request-id"])
        assert len(ids) == 200  # the field really was new every time
        table = client.conn.decoder.header_table
        assert table.maxsize <= 4096, table.maxsize
        # Many of the 200 fields were indexed, yet what is kept fits in 4096 octets.
        assert len(table.dynamic_entries) >= 10
    finally:
        client.close()
