from typing import Any

from django.conf import settings
from django.http import HttpRequest


def htmx(request: HttpRequest) -> dict[str, Any]:
    """The htmx scripts of settings.HTMX_SCRIPTS (where from, and their integrity hashes)."""
    return {"htmx_scripts": settings.HTMX_SCRIPTS}
