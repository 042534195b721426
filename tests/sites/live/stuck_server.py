"""Run by tests/test_django_native_serving.py in a subprocess: a live server (thread) whose one
request never ends is stopped; then this process must exit, not wait for that request."""

import os
import socket
import sys
import time
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.sites.django_native.settings")
django.setup()

from switchboard.testing.live import LiveServer, project_application  # noqa: E402

marker = Path(os.environ["DJANGO_SITE_DIR"]) / "stuck-started"
server = LiveServer(
    project_application(serve_static=False),
    timeout_graceful_shutdown=0.5,
    application_close_timeout=0.5,
)
server.start()
sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
sock.sendall(b"GET /native/stuck/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
deadline = time.monotonic() + 20
while not marker.exists():
    if time.monotonic() > deadline:
        sys.exit("the stuck view never started")
    time.sleep(0.02)
server.stop()
print(f"stopped; the view ran in {marker.read_text()}", flush=True)
