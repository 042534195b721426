"""Suite-wide setup: Django configured once with the suite's settings
(tests.sites.default.settings) and its tables migrated."""

import os

import django
import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.sites.default.settings")
django.setup()


@pytest.fixture(scope="session", autouse=True)
def _migrated_database() -> None:
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)


@pytest.fixture(autouse=True)
def _fresh_channel_layers():
    """Each test builds its own layers: none leak between event loops."""
    from switchboard.layers import channel_layers

    channel_layers.reset()
    yield
    channel_layers.reset()


def pytest_collection_modifyitems(config, items):
    # Nothing the project ships may be skipped in CI.
    if os.environ.get("CI") == "true":
        config.pluginmanager.register(_FailSkips(), "switchboard-no-skips")


class _FailSkips:
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if report.skipped and not hasattr(report, "wasxfail"):
            report.outcome = "failed"
            report.longrepr = f"skipped in CI, which is not allowed: {report.longrepr}"
