"""The native test site under ``manage.py runserver``: Switchboard's command first, DEBUG on
(static files from the finders), and no ASGI_APPLICATION, so the project is Django's bare
handler, which runserver wraps in the static files handler."""

from tests.sites.django_native.settings import *  # noqa: F403
from tests.sites.django_native.settings import INSTALLED_APPS

INSTALLED_APPS = ["switchboard", *INSTALLED_APPS]
DEBUG = True
