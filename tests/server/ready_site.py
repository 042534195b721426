"""A one-module Django project on the Redis channel layer, for the readiness tests.

``READY_SITE_REDIS_URL`` names the Redis server; ``ALLOWED_HOSTS`` is only 127.0.0.1, so a
request that reaches Django with another Host gets 400 (CommonMiddleware asks for the host).
"switchboard" is installed: its AppConfig registers the channel-layer readiness check.
"""

import os

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="switchboard-tests-not-secret",
    ALLOWED_HOSTS=["127.0.0.1"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["switchboard"],
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],  # checks the Host
    DATABASES={},
    CHANNEL_LAYERS={
        "default": {
            "BACKEND": "switchboard.layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": [os.environ["READY_SITE_REDIS_URL"]]},
        }
    },
)

from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

urlpatterns = [path("", lambda request: HttpResponse("django saw /"))]

application = get_asgi_application()
