"""The status of one plain GET on a loopback port, error statuses included."""

from __future__ import annotations

import urllib.error
import urllib.request


def get_status(port: int, path: str) -> int:
    """The response status of ``GET path``; the body is read (and dropped) first."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
