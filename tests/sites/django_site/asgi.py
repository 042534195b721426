"""The site's ASGI entry point, exactly as ``startproject`` writes it."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.sites.django_site.settings")

application = get_asgi_application()
