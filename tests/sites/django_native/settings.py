"""tests/sites/django_site's settings, plus this app and the knobs the native-path tests turn."""

import os

from tests.sites.django_site.settings import *  # noqa: F403
from tests.sites.django_site.settings import DATABASES, INSTALLED_APPS

ROOT_URLCONF = "tests.sites.django_native.urls"
INSTALLED_APPS = [*INSTALLED_APPS, "tests.sites.django_native.apps.NativeSiteConfig"]
DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("NATIVE_CONN_MAX_AGE", "0"))
if "SWITCHBOARD_NATIVE_HTTP" in os.environ:
    SWITCHBOARD_NATIVE_HTTP = os.environ["SWITCHBOARD_NATIVE_HTTP"] == "1"
if "SWITCHBOARD_HTTP_CONCURRENCY" in os.environ:
    SWITCHBOARD_HTTP_CONCURRENCY = int(os.environ["SWITCHBOARD_HTTP_CONCURRENCY"])
