"""The tutorial (docs/tutorial.md) as written.

Its files are shown whole, inline (so the page reads the same on GitHub as in the built site),
each with its path on its first line. Here: every one of them is the chat example's own file
(examples/chat, or the first consumer in tests/docs_samples/), the tutorial shows every file the
example has, and its commands, run in order in an empty directory with the files written as
shown, build a project that serves the step-5 exchange, serves the room page, and passes its
own tests with the test command of step 7 exactly as written (Django's test runner, the
site's own asgi.py with AllowedHostsOriginValidator).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from django.urls import re_path
from websockets.sync.client import connect

from switchboard.routing import URLRouter
from switchboard.testing import WebsocketCommunicator
from tests.support.example_server import free_port

REPO = Path(__file__).resolve().parent.parent
TUTORIAL = REPO / "docs" / "tutorial.md"
EXAMPLE = REPO / "examples" / "chat"
FIRST_CONSUMER = REPO / "tests" / "docs_samples" / "first_consumers.py"
FIRST_VERSION = "chat/consumers.py (first version)"

sys.path.insert(0, str(EXAMPLE))

# The first line of a block names its file, in the language's own comment.
_PATH_LINE = {"python": r"# (.+)", "html": r"\{# (.+) #\}"}

# Replaced by the suite's environment, which has the checkout installed (editable): the
# tutorial's reader makes a virtual environment and installs Switchboard into it.
ENVIRONMENT_LINES = {
    "python -m venv .venv",
    ". .venv/bin/activate",
    'python -m pip install "/path/to/switchboard"',
    'python -m pip install "/path/to/switchboard[redis]"',
}


@dataclass
class Block:
    kind: str  # "file", "sh" or another fence language
    text: str
    path: str = ""
    line: int = 0
    path_line: str = ""


def _blocks() -> list[Block]:
    markdown = TUTORIAL.read_text(encoding="utf-8")
    blocks = []
    for match in re.finditer(r"^```(\w*)[^\n]*\n(.*?)^```", markdown, re.M | re.S):
        language, text = match.group(1), match.group(2)
        line = markdown.count("\n", 0, match.start()) + 1
        first, _, rest = text.partition("\n")
        named = re.fullmatch(_PATH_LINE[language], first) if language in _PATH_LINE else None
        if named:
            blocks.append(Block("file", rest, named.group(1), line, first))
        else:
            blocks.append(Block(language, text, line=line))
    return blocks


def _example_source(path: str) -> str:
    if path == FIRST_VERSION:
        text = FIRST_CONSUMER.read_text(encoding="utf-8")
        section = text.split("# --8<-- [start:consumer]\n")[1].split("# --8<-- [end:consumer]")[0]
        return section.rstrip("\n") + "\n"
    return (EXAMPLE / path).read_text(encoding="utf-8")


def test_every_file_the_tutorial_shows_is_the_examples_own():
    shown = {}
    for block in _blocks():
        if block.kind == "file":
            assert block.text == _example_source(block.path), (
                f"docs/tutorial.md:{block.line}: {block.path} differs from the example's file"
            )
            shown[block.path] = block
    assert FIRST_VERSION in shown
    # Every file of the example a reader has to write (startproject and startapp make the rest).
    written = {
        str(path.relative_to(EXAMPLE))
        for path in EXAMPLE.rglob("*")
        if path.is_file()
        and path.suffix in (".py", ".html")
        and "__pycache__" not in path.parts
        and path.name not in ("manage.py", "__init__.py")
    }
    assert written - set(shown) == set(), "files of examples/chat the tutorial does not show"


def test_the_tutorial_has_no_site_only_syntax():
    """GitHub renders the file as it is: no snippet includes, no attribute lists."""
    markdown = TUTORIAL.read_text(encoding="utf-8")
    assert "--8<--" not in markdown
    assert not re.search(r"\{:[^}]*\}", markdown)
    assert not re.search(r"^(!!!|\?\?\?)", markdown, re.M)  # admonitions


# -- the tutorial, run ---------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # A reader's shell has none of the suite's settings.
    for name in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "CHAT_DATABASE", "CHAT_REDIS_URL"):
        env.pop(name, None)
    env.pop("DJANGO_DEBUG", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _commands(block: Block) -> list[str]:
    lines = []
    for line in block.text.splitlines():
        command = re.sub(r"\s+#.*$", "", line).strip()
        if command:
            lines.append(command)
    return lines


class _Background:
    """A server command of the tutorial, on a free port, until ``stop()``."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = open(log, "wb")
        self.process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_listening(self, port: int) -> None:
        deadline = time.monotonic() + 30
        while True:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                assert time.monotonic() < deadline, self.log_path.read_text()
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)
        self._log.close()


def _step5_console_exchange(port: int) -> None:
    """What step 5 types in the browser's console, from the page's own origin."""
    url, origin = f"ws://127.0.0.1:{port}/ws/chat/lobby/", f"http://127.0.0.1:{port}"
    with connect(url, origin=origin, open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "welcome"
        ws.send(json.dumps({"message": "hello"}))
        echoed = json.loads(ws.recv(timeout=10))
        assert echoed["type"] == "message" and echoed["message"] == "hello"


def _step6_room_page(port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    with urllib.request.urlopen(f"{base}/chat/lobby/", timeout=10) as page:
        html = page.read().decode()
    script = re.search(r'from "([^"]+/switchboard\.js)"', html)
    assert script, html
    with urllib.request.urlopen(base + script.group(1), timeout=10) as client:
        assert b"export class Switchboard" in client.read()
    with connect(f"ws://127.0.0.1:{port}/ws/chat/lobby/", origin=base, open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "welcome"
        ws.send(json.dumps({"sb": "sub", "topic": "chat_lobby"}))
        assert json.loads(ws.recv(timeout=10))["sb"] == "subscribed"


def _serve(command: str, cwd: Path, env: dict[str, str], log: Path) -> None:
    """Runs a server command of the tutorial on a free port and checks what the step says."""
    port = free_port()
    argv = shlex.split(command)
    if argv[-1] == "runserver":
        argv += [f"127.0.0.1:{port}", "--noreload"]
        check = _step5_console_exchange
    else:
        assert argv[argv.index("--port") + 1] == "8000", command
        argv[argv.index("--port") + 1] = str(port)
        check = _step6_room_page
    server = _Background(argv, cwd, env, log)
    try:
        server.wait_listening(port)
        check(port)
    finally:
        server.stop()


def test_the_tutorial_runs_as_written(tmp_path):
    env = _env()
    cwd = tmp_path  # an empty directory, as the reader starts in
    ran: list[str] = []
    skipped: set[str] = set()
    tested = False
    for block in _blocks():
        if block.kind == "file":
            target = cwd / block.path.removesuffix(" (first version)")
            target.parent.mkdir(parents=True, exist_ok=True)
            # As the reader pastes it, path line included.
            target.write_text(f"{block.path_line}\n{block.text}", encoding="utf-8")
            continue
        if block.kind != "sh":
            continue
        for command in _commands(block):
            if command in ENVIRONMENT_LINES:
                skipped.add(command)
            elif command.startswith("CHAT_REDIS_URL="):
                # Step 8 needs a Redis server: tests/test_example_chat_browser.py runs two
                # servers of the example on one.
                skipped.add(command)
            elif " runserver" in command or " serve " in command:
                _serve(command, cwd, env, tmp_path / f"server-{len(ran)}.log")
            elif command.startswith("cd "):
                cwd = cwd / shlex.split(command)[1]
            else:
                result = subprocess.run(
                    shlex.split(command), cwd=cwd, env=env, capture_output=True, text=True,
                    timeout=180,
                )  # fmt: skip
                output = result.stdout + result.stderr
                assert result.returncode == 0, f"{command}:\n{output}"
                if command == "python manage.py test chat":
                    assert re.search(r"^Ran [1-9]\d* tests? ", output, re.M), output
                    assert re.search(r"^OK$", output, re.M), output
                    tested = True
            ran.append(command)
    assert skipped == ENVIRONMENT_LINES | {c for c in skipped if c.startswith("CHAT_REDIS_URL")}
    assert ran[:2] == ["mkdir chat-demo", "cd chat-demo"]
    assert tested, "the tutorial's test command did not run"
    assert (cwd / "chat" / "tests.py").read_text().startswith("# chat/tests.py\n")


# -- the tutorial's first consumer (step 2, before presence and history) -------------------------

from tests.docs_samples.first_consumers import ChatConsumer as FirstChatConsumer  # noqa: E402

first_application = URLRouter(
    [re_path(r"^ws/chat/(?P<room>[A-Za-z0-9_-]{1,64})/$", FirstChatConsumer.as_asgi())]
)


async def test_the_first_consumer_relays_messages_to_its_room():
    alice = WebsocketCommunicator(first_application, "/ws/chat/lobby/")
    bob = WebsocketCommunicator(first_application, "/ws/chat/lobby/")
    elsewhere = WebsocketCommunicator(first_application, "/ws/chat/elsewhere/")
    for client in (alice, bob, elsewhere):
        assert (await client.connect())[0]
    welcome = await alice.receive_json_from()
    assert welcome["type"] == "welcome" and welcome["room"] == "lobby"
    await bob.receive_json_from()
    await elsewhere.receive_json_from()

    await alice.send_json_to({"message": " hi "})
    for member in (alice, bob):
        event = await member.receive_json_from()
        assert event["type"] == "message" and event["message"] == "hi"
        assert event["username"] == welcome["username"]
        assert event["timestamp"].endswith("+00:00")
    assert await elsewhere.receive_nothing()  # another room hears nothing

    await alice.send_json_to({"message": ""})
    assert (await alice.receive_json_from())["type"] == "error"
    for client in (alice, bob, elsewhere):
        await client.disconnect()
