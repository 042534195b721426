"""``switchboard serve`` as an operator meets it: --help, --version, and startup errors.

Every test runs the real command in a subprocess. Exit status 1 is for an address that
cannot be listened on, 2 for a bad command line or application (as argparse uses 2 for usage).
"""

from __future__ import annotations

import functools
import re
import socket
from importlib.metadata import version

import pytest

from switchboard.server.asgi.app_check import AppShapeError, check_asgi_app
from switchboard.server.runtime.cli import build_parser
from tests.server.serve_process import Serving, run_serve


def _help_entries(text: str) -> dict[str, str]:
    """Option strings of each ``--help`` entry -> its help text (joined over wrapped lines)."""
    entries: dict[str, str] = {}
    current: str | None = None
    for line in text.splitlines():
        match = re.match(r"^  (-[^ ].*?)(?:\s{2,}(.*))?$", line)
        if match:
            current = match.group(1)
            entries[current] = match.group(2) or ""
        elif current is not None and line.startswith(" " * 4) and line.strip():
            entries[current] = f"{entries[current]} {line.strip()}".strip()
        else:
            current = None
    return entries


def _serve_actions():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices and "serve" in a.choices)
    return subparsers.choices["serve"]._actions


def test_help_documents_every_option_with_its_default() -> None:
    result = run_serve("serve", "--help")
    assert result.returncode == 0, result.stderr
    entries = _help_entries(result.stdout)
    options = [a for a in _serve_actions() if a.option_strings]
    assert len(options) >= 24  # every Config setting the CLI exposes, plus --help/--version
    for action in options:
        # An entry is keyed by its first line: "--port PORT" or "--access-log, --no-access-log".
        key = next(k for k in entries if re.split(r"[ ,]", k)[0] == action.option_strings[0])
        text = entries[key]
        assert text, f"{key} has no help text"
        if action.dest in ("help", "version"):
            continue
        assert "(default: " in text, f"{key} does not state its default: {text!r}"
        if action.default not in (None, False, True, ""):
            assert f"(default: {action.default}" in text, f"{key}: {text!r}"


def test_help_states_units() -> None:
    entries = _help_entries(run_serve("serve", "--help").stdout)
    units = {
        "--ws-max-size": "bytes",
        "--max-body-size": "bytes",
        "--max-header-size": "bytes",
        "--timeout-keep-alive": "seconds",
        "--timeout-graceful-shutdown": "seconds",
        "--application-close-timeout": "seconds",
        "--ws-handshake-timeout": "seconds",
        "--ws-ping-interval": "seconds",
        "--ws-ping-timeout": "seconds",
        "--ssl-handshake-timeout": "seconds",
    }
    for option, unit in units.items():
        key = next(k for k in entries if k.split()[0] == option)
        assert unit in f"{key} {entries[key]}".lower(), (option, entries[key])


@pytest.mark.parametrize("args", [["--version"], ["serve", "--version"]])
def test_version_comes_from_package_metadata(args: list[str]) -> None:
    result = run_serve(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"switchboard {version('switchboard')}"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_one_line_and_exit_status_1(workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve(
            "serve", "tests.server.cli_apps:asgi_app", "--port", str(port), "--workers", workers
        )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == (
        f"switchboard: error: Cannot listen on 127.0.0.1:{port}: Address already in use"
    )


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        (
            "wsgi_function",
            "'tests.server.cli_apps:wsgi_function' looks like a WSGI application",
        ),
        ("wsgi_object", "'tests.server.cli_apps:wsgi_object' looks like a WSGI application"),
        # (Served as WSGI under the default --interface auto; refused only when told "asgi".)
        ("EchoConsumer", "is a consumer class, not an ASGI application: did you mean "),
        ("not_callable", "'tests.server.cli_apps:not_callable' is not callable (it is a dict)"),
        ("two_arguments", "takes 2 positional arguments; an ASGI application is called as "),
    ],
)
def test_an_object_that_is_not_an_asgi_app_is_refused_at_startup(app: str, expected: str) -> None:
    # Before, these started listening and answered 500 to every request: the process never
    # exited, so subprocess.run's timeout failed the test.
    interface = ["--interface", "asgi"] if app.startswith("wsgi") else []
    result = run_serve(
        "serve", f"tests.server.cli_apps:{app}", "--port", "0", *interface, timeout=20
    )
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    if app.startswith("wsgi"):
        assert "serve it with --interface wsgi" in result.stderr
    if app == "EchoConsumer":
        assert "did you mean EchoConsumer.as_asgi()?" in result.stderr


def test_listening_line_names_a_unix_socket(tmp_path) -> None:
    path = tmp_path / "serve.sock"
    server = Serving(tmp_path / "stderr.log", "tests.server.cli_apps:asgi_app", "--uds", str(path))
    try:
        server.wait_for(f"Listening on unix:{path} (Ctrl-C to quit)")
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(5)
            client.connect(str(path))
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert client.recv(65536).startswith(b"HTTP/1.1 200")
        assert server.stop() == 0
    finally:
        server.close()


def test_listening_line_names_an_inherited_fd(tmp_path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    fd = listener.fileno()
    server = Serving(
        tmp_path / "stderr.log",
        "tests.server.cli_apps:asgi_app",
        "--fd",
        str(fd),
        pass_fds=(fd,),
    )
    listener.close()  # the child has its own copy
    try:
        server.wait_for(f"Listening on fd {fd} (http://127.0.0.1:{port}) (Ctrl-C to quit)")
        assert server.stop() == 0
    finally:
        server.close()


def test_a_bad_option_value_is_a_usage_error() -> None:
    result = run_serve("serve", "tests.server.cli_apps:asgi_app", "--log-level", "loud")
    assert result.returncode == 2
    assert "invalid choice: 'loud'" in result.stderr


class _AsgiInstance:
    async def __call__(self, scope, receive, send) -> None:
        pass


async def _with_extra(scope, receive, send, extra=None) -> None:
    pass


async def _varargs(*args) -> None:
    pass


def _django_asgi_handler():
    from django.core.asgi import get_asgi_application

    return get_asgi_application()


def _consumer_app():
    from tests.server.cli_apps import EchoConsumer

    return EchoConsumer.as_asgi()


@pytest.mark.parametrize(
    "make",
    [
        lambda: _AsgiInstance(),
        lambda: _with_extra,
        lambda: _varargs,  # middleware-style wrappers: arity unknown, so not refused
        lambda: functools.partial(_with_extra, extra=1),
        _consumer_app,
        _django_asgi_handler,
    ],
    ids=["instance", "extra-default", "varargs", "partial", "as_asgi", "django"],
)
def test_the_shape_check_accepts_asgi_applications(make) -> None:
    check_asgi_app(make())


def test_the_shape_check_recognises_djangos_wsgi_handler() -> None:
    from django.core.wsgi import get_wsgi_application

    with pytest.raises(AppShapeError, match="looks like a WSGI application"):
        check_asgi_app(get_wsgi_application(), "mysite.wsgi:application")
