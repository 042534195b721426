from django.apps import AppConfig


class NativeSiteConfig(AppConfig):
    name = "tests.sites.django_native"
    label = "django_native"

    def ready(self) -> None:
        from tests.sites.django_native import views

        views.connect_signals()
