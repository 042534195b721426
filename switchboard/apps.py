"""Django application config: add "switchboard" to INSTALLED_APPS for runworker (and friends)."""

from django.apps import AppConfig


class SwitchboardConfig(AppConfig):
    name = "switchboard"
    label = "switchboard"
    verbose_name = "Switchboard"

    def ready(self) -> None:
        # Registers the system checks (switchboard.E001 ...) as a side effect of the import.
        from switchboard import checks  # noqa: F401
