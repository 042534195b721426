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

        # In the startup log of `serve --workers N`, which imports the project before forking.
        announce_embedded_default(channel_layers_setting())
        # What `serve --ready-path` checks: a round trip through the default channel layer.
        health.register()
