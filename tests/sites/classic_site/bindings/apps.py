from django.apps import AppConfig


class BindingsConfig(AppConfig):
    name = "bindings"

    def ready(self):
        # Declaring the binding binds it: every process saving items must import it.
        from bindings import binding  # noqa: F401
