"""Django application config: add "switchboard" to INSTALLED_APPS for runworker (and friends)."""

from django.apps import AppConfig


class SwitchboardConfig(AppConfig):
    name = "switchboard"
    label = "switchboard"
    verbose_name = "Switchboard"
