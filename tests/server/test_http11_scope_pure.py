"""``wire/http11_scope`` without sockets: a request head as an ASGI ``http`` scope."""

from __future__ import annotations

from typing import Any

from switchboard.server.wire.http11_scope import request_scope

HEADERS = [(b"host", b"example.com")]


def scope(method: str, target: bytes, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "http_version": "1.1",
        "headers": HEADERS,
        "root_path": "",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 40000),
        "scheme": "http",
        "app_state": {},
        "tls": None,
    }
    args.update(kw)
    return request_scope(method, target, **args)


def test_target_split_into_path_and_query() -> None:
    s = scope("GET", b"/a%20b/c?x=1&y=%20")
    assert s["path"] == "/a b/c"
    assert s["raw_path"] == b"/a%20b/c"
    assert s["query_string"] == b"x=1&y=%20"
    assert s["method"] == "GET" and s["http_version"] == "1.1" and s["headers"] is HEADERS
    assert s["extensions"] == {"http.response.pathsend": {}, "http.response.trailers": {}}


def test_absolute_form_target_keeps_only_path_and_query() -> None:
    s = scope("GET", b"http://example.com/p?q")
    assert (s["path"], s["raw_path"], s["query_string"]) == ("/p", b"/p", b"q")


def test_connect_target_is_the_authority() -> None:
    s = scope("CONNECT", b"example.com:443")
    assert (s["path"], s["raw_path"], s["query_string"]) == (
        "example.com:443",
        b"example.com:443",
        b"",
    )


def test_root_path_goes_in_front_of_the_path() -> None:
    s = scope("GET", b"/x", root_path="/mount")
    assert (s["root_path"], s["path"], s["raw_path"]) == ("/mount", "/mount/x", b"/x")


def test_state_is_a_copy_and_tls_an_extension() -> None:
    state = {"db": object()}
    tls = {"server_cert": None, "tls_version": 0x0304}
    s = scope("GET", b"/", app_state=state, scheme="https", tls=tls)
    assert s["state"] == state and s["state"] is not state
    assert s["extensions"]["tls"] is tls and s["scheme"] == "https"
