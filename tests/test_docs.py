"""The documentation builds with ``mkdocs build --strict`` and its Python samples are Python.

Strict mode turns every warning into a failure: a broken link or anchor, a page missing from the
nav, a snippet whose file is gone (the testing guide includes the chat example's tests), a
reference entry mkdocstrings cannot find.
"""

from __future__ import annotations

import ast
import html
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD_LIMIT_SECONDS = 60


def _text(page: Path) -> str:
    """A built page as plain text (highlighting splits code into many spans)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


def test_documentation_builds_strictly_and_renders_code_and_reference(tmp_path: Path) -> None:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")  # Material's banner is not our warning
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_LIMIT_SECONDS,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr}"
    assert elapsed < BUILD_LIMIT_SECONDS

    tutorial = _text(tmp_path / "tutorial" / "index.html")
    # The example's files, shown inline (tests/test_docs_tutorial.py checks they are its own).
    assert "MAX_MESSAGE_LENGTH = 2000" in tutorial
    assert "AllowedHostsOriginValidator(" in tutorial
    assert "async def test_a_message_reaches_everyone_in_the_room" in tutorial
    assert "--8<--" not in tutorial
    # The tutorial builds up to the real example: its first consumer, then the final one on
    # RealtimeConsumer with switchboard.js, and the tests of the realtime protocol.
    assert "class ChatConsumer(AsyncJsonWebsocketConsumer):" in tutorial
    assert "class ChatConsumer(RealtimeConsumer):" in tutorial
    assert 'import { Switchboard } from "{% static' in tutorial
    assert "async def test_a_client_that_reconnects_gets_what_it_missed" in tutorial

    for page, included in [
        ("topics/realtime", "class Scoreboard(RealtimeConsumer):"),
        ("topics/streams", "class PostBinding(WebsocketBinding):"),
        ("topics/streams", "max_concurrent_messages = 8"),
    ]:
        text = _text(tmp_path / page / "index.html")
        assert included in text and "--8<--" not in text, page
    realtime = _text(tmp_path / "reference" / "realtime" / "index.html")
    assert "A client remembers, per topic, the epoch" in realtime  # the protocol docstring
    streams = _text(tmp_path / "reference" / "streams" / "index.html")
    assert "Data binding whose hooks" in streams and "Groups joined for a subscription" in streams

    layers = _text(tmp_path / "reference" / "layers" / "index.html")
    # mkdocstrings rendered the docstrings themselves, not just headings.
    assert "Delivery guarantees" in layers
    assert "at_least_once_channels" in layers
    server = _text(tmp_path / "reference" / "server" / "index.html")
    assert "Serve app (an ASGI callable" in server
    assert "What runs where (and so: thread-safety and database connections)" in server


def _python_blocks(markdown: str) -> list[tuple[int, str]]:
    blocks = []
    for match in re.finditer(r"^```python[^\n]*\n(.*?)^```", markdown, re.M | re.S):
        line = markdown.count("\n", 0, match.start()) + 1
        blocks.append((line, match.group(1)))
    return blocks


def test_python_samples_in_readme_and_docs_are_valid_python() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    checked = 0
    for page in pages:
        for line, code in _python_blocks(page.read_text(encoding="utf-8")):
            if code.lstrip().startswith("--8<--"):
                continue  # included from a real file, which the suite imports or runs
            try:
                ast.parse(code)
            except SyntaxError as exc:
                raise AssertionError(f"{page.relative_to(ROOT)}:{line}: {exc}") from None
            checked += 1
    assert checked >= 20, f"only {checked} Python samples found: is the fence pattern right?"


def test_install_page_lists_every_extra_and_the_workers_default() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    install = (ROOT / "docs" / "install.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([\w-]+)` \|", install, re.M))
    assert listed == set(extras), "docs/install.md's extras table and pyproject.toml differ"
    # As README.md says: `serve --workers N` with no CHANNEL_LAYERS shares the IPC layer.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in (readme, install):
        assert "switchboard.layers.ipc.IPCChannelLayer" in page
        assert re.search(
            r"`(switchboard )?serve --workers N`[^.]*no[ \n]+(`CHANNEL_LAYERS`|setting)", page
        )
