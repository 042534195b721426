"""Another process saving Notes: ``python -m tests.binding.save_process DB REDIS_URL TITLE...``.

Uses the test settings with the given SQLite file and the Redis layer, as a second server or
a management command of the same site would.
"""

import os
import sys

os.environ["DJANGO_SETTINGS_MODULE"] = "tests.sites.default.settings"

from django.conf import settings  # noqa: E402

settings.DATABASES["default"]["NAME"] = sys.argv[1]
settings.CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "switchboard.layers.redis.RedisChannelLayer",
        "CONFIG": {"hosts": [sys.argv[2]]},
    }
}

import django  # noqa: E402

django.setup()

from tests.binding import test_binding  # noqa: E402, F401 - declares the bindings
from tests.sites.binding_app.models import Note  # noqa: E402

for title in sys.argv[3:]:
    note = Note.objects.create(title=title)
note.value = 7
note.save()
