from django.apps import AppConfig


class NativeSiteConfig(AppConfig):
    name = "tests.django_native"
    label = "django_native"

    def ready(self) -> None:
        from tests.django_native import views

        views.connect_signals()
