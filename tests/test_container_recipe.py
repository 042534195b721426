"""The container recipe for the chat example (examples/chat: Dockerfile, compose.yaml,
docker-entrypoint.sh) names commands that work.

Images cannot be built or pulled where the suite runs, so the recipe is read instead: the
Dockerfile's instructions and the compose file's services are parsed, and what they would run
is run here for real: the web service's command (the image's entrypoint with compose's
arguments, under the image's and the service's environment) with a real redis-server from the
test harness standing in for the compose ``redis`` service, and both health checks (the
Dockerfile's ``HEALTHCHECK`` and the compose ``healthcheck``) against it, exit status 0 when
ready and not 0 while Redis is down, as Docker reads them (Dockerfile reference, HEALTHCHECK:
"0: success, 1: unhealthy"). Only what the recipe itself reads from the environment is
adjusted: ``HOST``, ``PORT``, ``CHAT_REDIS_URL``, ``CHAT_DATABASE`` and ``PATH``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.support.redis_servers import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
CHAT = ROOT / "examples" / "chat"
DOCKERFILE = CHAT / "Dockerfile"
COMPOSE = CHAT / "compose.yaml"
# Where the image keeps what this checkout has: the example (WORKDIR) and the virtualenv.
IMAGE_APP = "/app"
IMAGE_VENV_BIN = "/opt/venv/bin"


# -- reading the recipe -----------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def one(self, keyword: str) -> str:
        found = self.all(keyword)
        assert len(found) == 1, f"{keyword}: {found}"
        return found[0]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for args in self.all("ENV"):
            for item in shlex.split(args):
                key, sep, value = item.partition("=")
                assert sep, f"ENV in key=value form only: {args}"
                values[key] = value
        return values


def read_dockerfile(path: Path = DOCKERFILE) -> list[Stage]:
    """The stages of a Dockerfile: (instruction, arguments), continuation lines joined and
    comments dropped, as the Dockerfile reference describes the format."""
    stages: list[Stage] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comments may sit between continuation lines too
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            base, _, name = args.partition(" AS ")
            stages.append(Stage(base.strip(), name.strip() or None))
        else:
            assert stages, f"{keyword} before FROM"
            stages[-1].instructions.append((keyword, args))
    assert not pending, "the Dockerfile ends with a continuation"
    return stages


def healthcheck_command(args: str) -> list[str]:
    options, sep, command = args.partition(" CMD ")
    assert sep, f"HEALTHCHECK without CMD: {args}"
    return json.loads(command)


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s", duration)
    assert match, duration
    return float(match.group(1))


def in_checkout(path: str) -> Path:
    """A path inside the image, as it is in this checkout."""
    assert path.startswith(IMAGE_APP + "/"), path
    return CHAT / path[len(IMAGE_APP) + 1 :]


# -- what the image is built from -------------------------------------------------------------


def test_the_image_is_built_from_the_lock_with_the_tested_python() -> None:
    build, final = read_dockerfile()
    assert build.base == final.base  # the virtualenv's interpreter is the final image's own
    python = re.fullmatch(r"python:(\d+\.\d+)-slim", final.base)
    assert python, final.base
    tested = set(re.findall(r"run_line \.venv\S* (\d+\.\d+)", (ROOT / "scripts/test").read_text()))
    assert python.group(1) in tested, (python.group(1), tested)

    # uv as the scripts pin it, syncing the locked environment with the redis extra.
    uv_pin = re.search(r"^UV_VERSION=(\S+)$", (ROOT / "scripts/_env.sh").read_text(), re.M)
    assert uv_pin and f'"uv=={uv_pin.group(1)}"' in build.all("RUN")[0]
    sync = shlex.split(build.all("RUN")[1])
    assert sync[:2] == ["uv", "sync"] and "--locked" in sync and "--no-editable" in sync
    extras = {sync[i + 1] for i, arg in enumerate(sync) if arg == "--extra"}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "redis" in extras and extras <= set(project["optional-dependencies"])
    assert build.env()["UV_PROJECT_ENVIRONMENT"] + "/bin" == IMAGE_VENV_BIN
    copies = [shlex.split(args) for stage in (build, final) for args in stage.all("COPY")]
    assert ["--from=build", "/opt/venv", "/opt/venv"] in copies

    # What the build context sends: every COPY source, and nothing else worth naming.
    ignore = (CHAT / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for copy in copies:
        if copy[0].startswith("--from="):
            continue
        for source in copy[:-1]:
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") in allowed, f"{source} is left out of the context"

    # The example lands in WORKDIR, and the entrypoint is its script.
    assert final.one("WORKDIR") == IMAGE_APP
    assert ["examples/chat/", "./"] in copies
    entrypoint = json.loads(final.one("ENTRYPOINT"))
    script = in_checkout(entrypoint[0])
    assert script.name == "docker-entrypoint.sh" and os.access(script, os.X_OK)
    assert final.env()["PATH"].split(":")[0] == IMAGE_VENV_BIN

    web = compose()["services"]["web"]
    assert (CHAT / web["build"]["context"]).resolve() == ROOT
    assert ROOT / web["build"]["dockerfile"] == DOCKERFILE


# -- the commands, run --------------------------------------------------------------------------


def _environment(tmp_path: Path, redis_url: str, port: int) -> dict[str, str]:
    """The web container's environment (the image's ENV, then compose's ``environment``), with
    only the variables the recipe itself reads adjusted to this machine."""
    final = read_dockerfile()[-1]
    recipe = {**final.env(), **compose()["services"]["web"]["environment"]}
    adjusted = {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "CHAT_REDIS_URL": redis_url,
        "CHAT_DATABASE": str(tmp_path / "chat.sqlite3"),
        "PATH": recipe["PATH"]
        .replace(IMAGE_VENV_BIN, str(Path(sys.executable).parent))
        .replace("$PATH", os.environ["PATH"]),
    }
    assert set(adjusted) <= set(recipe), set(adjusted) - set(recipe)
    env = {key: value for key, value in os.environ.items() if key in ("HOME", "LANG", "TMPDIR")}
    return {**env, **recipe, **adjusted}


def _healthy(command: list[str], env: dict[str, str], timeout: float) -> bool:
    assert command[0] == "CMD", command  # exec form, run as is
    result = subprocess.run(command[1:], env=env, capture_output=True, timeout=timeout + 5)
    return result.returncode == 0


def _wait_healthy(
    command: list[str], env: dict[str, str], timeout: float, within: float, log: Path
) -> None:
    deadline = time.monotonic() + within
    while not _healthy(command, env, timeout):
        if time.monotonic() > deadline:
            output = log.read_text(errors="replace")
            raise AssertionError(f"the health check still fails after {within}s:\n{output}")
        time.sleep(0.5)


def test_the_compose_web_command_serves_the_chat_on_redis_and_passes_its_healthchecks(
    tmp_path: Path,
) -> None:
    services = compose()["services"]
    web = services["web"]
    # The compose redis service is Redis with an append-only file: the harness's aof=True.
    assert services["redis"]["command"] == ["redis-server", "--appendonly", "yes"]
    assert web["depends_on"]["redis"]["condition"] == "service_healthy"
    final = read_dockerfile()[-1]
    entrypoint = json.loads(final.one("ENTRYPOINT"))
    command = [str(in_checkout(entrypoint[0])), *entrypoint[1:], *web["command"]]
    assert "--workers" in command
    check = web["healthcheck"]
    check_timeout = seconds(check["timeout"])
    image_check = ["CMD", *healthcheck_command(final.one("HEALTHCHECK"))]

    port = free_port()
    with RedisServer(name="compose", aof=True) as redis:
        env = _environment(tmp_path, redis.url, port)
        with open(tmp_path / "web.log", "wb") as log:
            # A session of its own: if the test fails, its workers go down with it.
            web_process = subprocess.Popen(
                command,
                cwd=CHAT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            # Docker waits start_period for a first success.
            start_period = seconds(check["start_period"])
            _wait_healthy(check["test"], env, check_timeout, start_period, tmp_path / "web.log")
            assert _healthy(image_check, env, check_timeout)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
                assert page.status == 200 and b"Switchboard chat" in page.read()

            # Redis gone: the workers are not ready, and both checks say unhealthy.
            redis.stop()
            assert not _healthy(check["test"], env, check_timeout)
            assert not _healthy(image_check, env, check_timeout)
            redis.start()
            _wait_healthy(check["test"], env, check_timeout, 20, tmp_path / "web.log")

            # docker compose stop: SIGTERM, then SIGKILL after stop_grace_period.
            web_process.send_signal(signal.SIGTERM)
            assert web_process.wait(seconds(web["stop_grace_period"])) == 0
        finally:
            try:
                os.killpg(web_process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # stopped as it should, workers included
            web_process.wait(10)
            output = (tmp_path / "web.log").read_text(errors="replace")
    assert "Listening on http://127.0.0.1:" in output, output
    assert output.count("Started server process") == 2, output
