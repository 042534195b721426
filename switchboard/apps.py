"""Django application config: add "switchboard" to INSTALLED_APPS for runworker (and friends)."""

from django.apps import AppConfig


class SwitchboardConfig(AppConfig):
    name = "switchboard"
    label = "switchboard"
    verbose_name = "Switchboard"

    def ready(self) -> None:
        # Registers the system checks (switchboard.E001 ...) as a side effect of the import.
        from switchboard.integration import checks, health  # noqa: F401
        from switchboard.integration.settings import channel_layers_setting
        from switchboard.layers.registry import announce_embedded_default
        from switchboard.streams import api_settings  # noqa: F401 - switchboard.E041
        from switchboard.transports import checks as transport_checks  # noqa: F401

        # In the startup log of `serve --workers N`, which imports the project before forking.
        announce_embedded_default(channel_layers_setting())
        # What `serve --ready-path` checks: a round trip through the default channel layer.
        health.register()
        _register_task_checks()


def _register_task_checks() -> None:
    """The deploy-time checks of Switchboard's task backends (Django's own task check calls
    each backend's ``check()`` without saying whether ``--deploy`` was given). Only for a
    project whose TASKS names the backend: no one else imports Django's Tasks API here."""
    from django.conf import settings
    from django.core import checks

    tasks = getattr(settings, "TASKS", None)
    if not isinstance(tasks, dict) or not any(
        isinstance(entry, dict) and str(entry.get("BACKEND", "")).startswith("switchboard.tasks")
        for entry in tasks.values()
    ):
        return
    from switchboard.tasks.backend import deploy_checks

    checks.register(deploy_checks, "switchboard", deploy=True)
