"""A one-module Django project (DEBUG on) served by the logging tests as ``module:application``.

It configures settings itself, so it does not depend on ``DJANGO_SETTINGS_MODULE``.
"""

from django.conf import settings

settings.configure(
    DEBUG=True,
    SECRET_KEY="switchboard-tests-not-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=[],
    DATABASES={},
)

from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

urlpatterns = [path("", lambda request: HttpResponse("ok"))]

application = get_asgi_application()
