"""HTTP/2 attacks, each from a raw ``h2``-based client against a real server process: the
attacking connection is closed (or its cost bounded), the server's memory stays bounded, and
it goes on serving other clients."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack
import pytest
from hyperframe.frame import (
    ContinuationFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

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
                client.request_then_cancel("/slow?5")
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
    flood_is_cut_off(server, frame, 100, f"{kind.upper()} flood")


def flood_is_cut_off(server: tuple[Serving, int], frame: bytes, batch: int, said: str) -> None:
    """Send ``frame`` in batches of ``batch``, 200 batches at most: the server must answer
    GOAWAY ENHANCE_YOUR_CALM before the client is done, and log ``said``."""
    sent = 0

    def run(client: RawH2) -> None:
        nonlocal sent
        for _ in range(200):
            if not client.send_raw(frame * batch):
                return
            sent += batch
            client.read(0.005)
            if client.goaway() is not None or client.closed:
                return

    client = attack(server, run)
    goaway = client.goaway()
    assert goaway is not None and goaway.error_code == ENHANCE_YOUR_CALM
    assert sent < 200 * batch
    assert said in server[0].stderr


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


def test_an_unfinished_header_block_is_timed_out_while_another_stream_is_open(
    server: tuple[Serving, int],
) -> None:
    """HEADERS without END_HEADERS, then nothing: the connection can carry no other frame until
    the block ends (RFC 9113 section 6.10), and the server holds the block. With no stream
    open the idle timer ended it; with one open (here an upload the application waits for)
    nothing did. Now the block gets the time an HTTP/1.1 head gets (--timeout-keep-alive,
    5 s), then GOAWAY ENHANCE_YOUR_CALM."""
    _, port = server
    client = RawH2(port)
    try:
        open_sid = client.request("/echo", method="POST", end=False)
        client.read(0.3)
        sid = open_sid + 2
        block = request_block(hpack.Encoder(), sid)
        client.send_raw(HeadersFrame(sid, data=block[:10]).serialize())
        client.send_raw(ContinuationFrame(sid, data=block[10:]).serialize())
        started = time.monotonic()
        assert client.wait_closed(9), "the unfinished header block was held for 9 s"
        elapsed = time.monotonic() - started
        assert 4 < elapsed < 8, elapsed
        goaway = client.goaway()
        assert goaway is not None and goaway.error_code == ENHANCE_YOUR_CALM
    finally:
        client.close()
    still_serves(port)


def test_a_header_block_over_max_header_size_is_cut_off_before_it_ends(
    server: tuple[Serving, int],
) -> None:
    """HTTP/1.1 heads are held to --max-header-size (16 KiB) as they arrive; an HTTP/2 header
    block is too, counted as it arrives, rather than at the 64 CONTINUATION frames (up to
    1 MB) after which the h2 library gives up. A block that large could not decode to a
    header list within the limit anyway (HPACK never makes a field list smaller than its
    literal encoding plus the 32 octets RFC 7541 section 4.1 counts per field)."""
    _, port = server
    client = RawH2(port)
    try:
        open_sid = client.request("/echo", method="POST", end=False)
        client.read(0.3)
        sid = open_sid + 2
        frames = HeadersFrame(sid, data=request_block(hpack.Encoder(), sid)).serialize()
        frames += ContinuationFrame(sid, data=b"\x00" * 4096).serialize() * 8
        client.send_raw(frames)
        assert client.wait_closed(3), "a 32 KiB header block in the making was kept"
        goaway = client.goaway()
        assert goaway is not None and goaway.error_code == ENHANCE_YOUR_CALM
    finally:
        client.close()
    assert "header block" in server[0].stderr
    still_serves(port)


@pytest.mark.parametrize("kind", ["WINDOW_UPDATE", "PRIORITY"])
def test_window_update_and_priority_floods_are_cut_off(
    server: tuple[Serving, int], kind: str
) -> None:
    """Frames that cost the server work and give the application nothing, like PING and
    SETTINGS (CVE-2019-9512/9515 and kin): 200,000 of them cost 1.8 s of CPU and were never
    answered with GOAWAY. RFC 9113 section 10.5: an endpoint MAY treat such activity as a
    connection error of type ENHANCE_YOUR_CALM."""
    if kind == "WINDOW_UPDATE":
        frame = WindowUpdateFrame(0, window_increment=1).serialize()
    else:
        frame = PriorityFrame(1, depends_on=0, stream_weight=15).serialize()
    flood_is_cut_off(server, frame, 1000, f"{kind} flood")


def test_a_client_that_gives_window_back_per_data_frame_is_no_flood(
    server: tuple[Serving, int],
) -> None:
    """The WINDOW_UPDATE budget grows with what the server sends: nghttp2 and browsers give
    window back per ~32 KiB read, some clients for every DATA frame, on the stream and on the
    connection. 20 MB in 16 KiB frames, two WINDOW_UPDATEs each, is no flood."""
    _, port = server
    client = RawH2(port)
    client.auto_ack = False
    size = 20_000_000
    try:
        sid = client.request(f"/big?{size}")
        received = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not client.closed:
            events = client.read(1.0)
            for e in events:
                if isinstance(e, h2.events.DataReceived) and e.flow_controlled_length:
                    received += len(e.data)
                    client.conn.increment_flow_control_window(e.flow_controlled_length)
                    try:
                        client.conn.increment_flow_control_window(e.flow_controlled_length, sid)
                    except h2.exceptions.StreamClosedError:
                        pass  # the stream ended later in the same read
            client.flush_quietly()
            if any(isinstance(e, h2.events.StreamEnded) for e in events):
                break
        assert received == size
        assert client.goaway() is None
    finally:
        client.close()


def test_nghttp_downloading_a_large_body_is_no_flood(server: tuple[Serving, int]) -> None:
    """nghttp (nghttp2's client, 64 KiB windows): 30 MB of response, a WINDOW_UPDATE for the
    stream and one for the connection per ~32 KiB it reads."""
    _, port = server
    done = subprocess.run(
        ["nghttp", "-n", "--stat", f"http://127.0.0.1:{port}/big?30000000"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "GOAWAY" not in done.stdout + done.stderr
    assert "/big?30000000" in done.stdout  # the request's line in the statistics


def test_extended_connect_that_ends_its_stream_gets_400(server: tuple[Serving, int]) -> None:
    """An RFC 8441 extended CONNECT opens a stream that carries the WebSocket (section 5);
    one whose HEADERS end the stream cannot be one. It was answered DATA with END_STREAM and
    no HEADERS, which is no response at all (RFC 9113 section 8.1: a response starts with
    HEADERS). Now: 400, ending the stream, and no application."""
    _, port = server
    client = RawH2(port)
    try:
        sid = client.conn.get_next_available_stream_id()
        client.conn.send_headers(
            sid,
            [
                (b":method", b"CONNECT"),
                (b":protocol", b"websocket"),
                (b":scheme", b"http"),
                (b":path", b"/chat"),
                (b":authority", b"localhost"),
                (b"sec-websocket-version", b"13"),
            ],
            end_stream=True,
        )
        client.flush()
        headers, _ = client.response(sid)
        assert headers.get(b":status") == b"400", client.events
        ended = [e for e in client.events if isinstance(e, h2.events.StreamEnded)]
        assert [e.stream_id for e in ended] == [sid]
    finally:
        client.close()
    still_serves(port)


def test_a_plain_connect_is_refused_with_501(server: tuple[Serving, int]) -> None:
    """CONNECT without :protocol asks for a TCP tunnel to :authority, with neither :scheme nor
    :path (RFC 9113 section 8.5). It reached the application as a request for the empty
    path. An origin server that offers no tunnel to any resource answers 501 Not
    Implemented (RFC 9110 section 15.6.2: the method is not supported for any resource);
    405 would be for a method not allowed on this resource, with an Allow field listing what
    is, and there is no resource here at all. The server answers it itself."""
    _, port = server
    client = RawH2(port)
    try:
        sid = client.conn.get_next_available_stream_id()
        client.conn.send_headers(
            sid, [(b":method", b"CONNECT"), (b":authority", b"example.com:443")]
        )
        client.flush()
        headers, body = client.response(sid)
        assert headers.get(b":status") == b"501", client.events
        assert body == b"Not Implemented"
    finally:
        client.close()
    still_serves(port)
