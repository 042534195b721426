"""System checks and runworker's startup check, run as ``manage.py`` commands in subprocesses.

Each test writes a small project (settings variant and modules) into a temporary folder and
runs ``django-admin check`` (or ``runworker``) on it, as a developer would, then reads the
check IDs and messages in the output. A package that is "not installed" is hidden from the
subprocess by an import hook that fails its import the way a missing package does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.support.scratch_project import HIDE_ABSENT_PACKAGES, write_project

REPO = Path(__file__).resolve().parent.parent

_BASE_SETTINGS = """
SECRET_KEY = "checks-test"
USE_TZ = True
ROOT_URLCONF = "proj.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
STATIC_URL = "static/"
INSTALLED_APPS = [
    "switchboard",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
]
"""

_ASGI = """
from django.core.asgi import get_asgi_application
from switchboard.routing import ChannelNameRouter, ProtocolTypeRouter
from proj.consumers import Thumbnails

application = ProtocolTypeRouter(
    {
        "http": get_asgi_application(),
        "channel": ChannelNameRouter({"thumbnails": Thumbnails.as_asgi()}),
    }
)
"""

_CONSUMERS = """
from switchboard.consumer import AsyncConsumer


class Thumbnails(AsyncConsumer):
    async def make_thumbnail(self, message):
        pass
"""

# Fails imports of the top-level packages named in $ABSENT_PACKAGES exactly as Python does
# for a package that is not installed (ModuleNotFoundError naming it), then runs django-admin.
_RUN_WITHOUT = (
    HIDE_ABSENT_PACKAGES
    + """
from django.core.management import execute_from_command_line
execute_from_command_line(["django-admin", *sys.argv[1:]])
"""
)


def _project(tmp_path: Path, settings: str = "", **modules: str) -> Path:
    return write_project(
        tmp_path,
        {
            "urls": "urlpatterns = []\n",
            "asgi": _ASGI,
            "consumers": _CONSUMERS,
            "settings": _BASE_SETTINGS + textwrap.dedent(settings),
            **modules,
        },
    )


def _env(project: Path, absent: str = "") -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="proj.settings",
        PYTHONPATH=os.pathsep.join([str(project), str(REPO)]),
        ABSENT_PACKAGES=absent,
        PYTHONUNBUFFERED="1",
    )
    return env


def _manage(project: Path, *args: str, absent: str = "") -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-c", _RUN_WITHOUT, *args],
        cwd=project,
        env=_env(project, absent),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, result.stdout + result.stderr


def test_a_correct_project_passes(tmp_path):
    project = _project(
        tmp_path,
        """
        ASGI_APPLICATION = "proj.asgi.application"
        CHANNEL_LAYERS = {
            "default": {"BACKEND": "switchboard.layers.inmemory.InMemoryChannelLayer"},
            "redis": {
                "BACKEND": "switchboard.layers.redis.RedisChannelLayer",
                "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"], "symmetric_encryption_keys": ["k"]},
            },
        }
        """,
    )
    code, output = _manage(project, "check")
    assert (code, output.strip()) == (0, "System check identified no issues (0 silenced)."), output


def test_switchboard_after_staticfiles(tmp_path):
    project = _project(
        tmp_path,
        """
        INSTALLED_APPS = [
            "django.contrib.contenttypes",
            "django.contrib.staticfiles",
            "switchboard.apps.SwitchboardConfig",  # an AppConfig path counts too
        ]
        """,
    )
    code, output = _manage(project, "check")
    assert code == 1
    assert "(switchboard.E001)" in output
    assert '"switchboard" comes after "django.contrib.staticfiles"' in output
    assert 'HINT: Move "switchboard" before "django.contrib.staticfiles"' in output


def test_switchboard_missing_is_reported_where_switchboard_is_loaded_before_the_checks(tmp_path):
    # Our AppConfig never loads then; importing the consumer base classes registers the check.
    # `manage.py test` imports the test modules (and so the consumers) before it runs checks.
    project = _project(
        tmp_path,
        """
        INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.staticfiles"]
        """,
        tests="""
        from unittest import TestCase

        from switchboard.generic.websocket import AsyncWebsocketConsumer


        class ConsumerTests(TestCase):
            def test_consumer_class(self):
                assert AsyncWebsocketConsumer.as_asgi()
        """,
    )
    code, output = _manage(project, "test", "proj")
    assert code == 0, output  # a warning: the commands still run, but say why
    assert "Ran 1 test" in output
    assert "(switchboard.W001)" in output
    assert '"switchboard" is not in INSTALLED_APPS' in output
    assert "WebSocket requests get 404" in output


def test_asgi_application_that_fails_to_import_is_named_with_the_cause(tmp_path):
    project = _project(
        tmp_path,
        'ASGI_APPLICATION = "proj.asgi.application"\n',
        asgi="""
        from django.core.asgi import get_asgi_application

        django_asgi_app = get_asgi_application()

        from proj.routing import websocket_urlpatterns  # a typo'd or forgotten module
        """,
    )
    code, output = _manage(project, "check")
    assert code == 1
    assert (
        "(switchboard.E002) ASGI_APPLICATION 'proj.asgi.application' cannot be imported"
    ) in output
    assert "ModuleNotFoundError: No module named 'proj.routing'" in output
    assert f"({project / 'proj' / 'asgi.py'}, line 6)" in output


def test_asgi_application_missing_attribute_and_bad_path(tmp_path):
    project = _project(tmp_path, 'ASGI_APPLICATION = "proj.asgi.app"\n')
    code, output = _manage(project, "check")
    assert code == 1
    assert (
        "(switchboard.E002) ASGI_APPLICATION 'proj.asgi.app': module 'proj.asgi' has no 'app'"
    ) in output
    project = _project(tmp_path, 'ASGI_APPLICATION = "application"\n')
    code, output = _manage(project, "check")
    assert code == 1
    assert "(switchboard.E002) ASGI_APPLICATION 'application' is not a dotted path" in output


def test_redis_layer_without_redis_installed_gives_the_install_command(tmp_path):
    project = _project(
        tmp_path,
        """
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "switchboard.layers.redis.RedisChannelLayer",
                "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"]},
            }
        }
        """,
    )
    code, output = _manage(project, "check", absent="redis")
    assert code == 1, output
    assert (
        "(switchboard.E003) CHANNEL_LAYERS['default'] BACKEND "
        "'switchboard.layers.redis.RedisChannelLayer' cannot be imported: "
        "ModuleNotFoundError: No module named 'redis"
    ) in output
    assert 'HINT: pip install "switchboard[redis]"' in output


def test_encryption_keys_without_cryptography_installed(tmp_path):
    project = _project(
        tmp_path,
        """
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "switchboard.layers.redis.RedisChannelLayer",
                "CONFIG": {
                    "hosts": ["redis://127.0.0.1:6379/0"],
                    "symmetric_encryption_keys": ["k"],
                },
            }
        }
        """,
    )
    code, output = _manage(project, "check", absent="cryptography")
    assert code == 1, output
    assert "(switchboard.E003) CHANNEL_LAYERS['default'] sets symmetric_encryption_keys" in output
    assert 'HINT: pip install "switchboard[crypto]"' in output


def test_channels_redis_backend_left_over_from_channels(tmp_path):
    project = _project(
        tmp_path,
        """
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [("127.0.0.1", 6379)]},
            }
        }
        """,
    )
    code, output = _manage(project, "check", absent="channels_redis")
    assert code == 1, output
    assert "(switchboard.E003) CHANNEL_LAYERS['default'] BACKEND" in output
    assert "No module named 'channels_redis" in output
    assert "HINT: Switchboard's own layer takes the same CONFIG: " in output
    assert "'switchboard.layers.redis.RedisChannelLayer'" in output


def test_malformed_channel_layers(tmp_path):
    project = _project(
        tmp_path,
        """
        CHANNEL_LAYERS = {
            "default": {"CONFIG": {}},
            "other": {"BACKEND": "switchboard.layers.inmemory.NoSuchLayer"},
        }
        """,
    )
    code, output = _manage(project, "check")
    assert code == 1
    assert "(switchboard.E004) CHANNEL_LAYERS['default'] needs a BACKEND" in output
    assert (
        "(switchboard.E003) CHANNEL_LAYERS['other'] BACKEND "
        "'switchboard.layers.inmemory.NoSuchLayer' is not a class in an importable module"
    ) in output
    project = _project(tmp_path, 'CHANNEL_LAYERS = ["default"]\n')
    code, output = _manage(project, "check")
    assert code == 1
    assert "(switchboard.E004) CHANNEL_LAYERS must be a dict of alias to layer, not list" in output


# -- runworker refuses channels nothing routes ------------------------------------------------


def test_runworker_refuses_a_channel_the_router_does_not_route(tmp_path):
    project = _project(tmp_path, 'ASGI_APPLICATION = "proj.asgi.application"\n')
    code, output = _manage(project, "runworker", "thumbnails", "thumbnail")
    assert code == 1, output
    assert (
        "CommandError: No application for channel(s) thumbnail in ASGI_APPLICATION's "
        "ChannelNameRouter (it routes: thumbnails)"
    ) in output
    assert "Running worker" not in output


def test_runworker_refuses_an_application_without_channel_routing(tmp_path):
    project = _project(
        tmp_path,
        'ASGI_APPLICATION = "proj.asgi.application"\n',
        asgi="""
        from django.core.asgi import get_asgi_application
        from switchboard.routing import ProtocolTypeRouter

        application = ProtocolTypeRouter({"http": get_asgi_application()})
        """,
    )
    code, output = _manage(project, "runworker", "thumbnails")
    assert code == 1, output
    assert "ASGI_APPLICATION's ProtocolTypeRouter has no 'channel' entry" in output


def test_runworker_starts_for_routed_channels(tmp_path):
    project = _project(tmp_path, 'ASGI_APPLICATION = "proj.asgi.application"\n')
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", _RUN_WITHOUT, "runworker", "thumbnails"],
            cwd=project, env=_env(project), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while "Running worker for channels thumbnails" not in log.read_text():
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            process.send_signal(signal.SIGTERM)
            assert process.wait(15) == 0, log.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(5)
