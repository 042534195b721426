"""Manual check: the Django end-to-end expectations hold on uvicorn too.

    ./scripts/bench    # once: builds .venv-bench from uv.lock (uvicorn is in the bench extra)
    .venv-bench/bin/python -m tests.sites.django_site.peer_check [uvicorn|switchboard ...]

Runs every test of tests/test_django_http.py (the CSRF form POST among them) against each named
server, with a fresh site and server process per server, and prints one line per test. Not a
pytest test on purpose: without the bench extra it could only skip, and nothing may skip in CI.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from pathlib import Path

from tests import test_django_http as suite
from tests.sites.django_site.serving import (
    Command,
    bootstrap_site,
    serve,
    switchboard_command,
    uvicorn_command,
)

SERVERS: dict[str, Command] = {"switchboard": switchboard_command, "uvicorn": uvicorn_command}


def check(server: str) -> int:
    """Run the suite's tests against ``server``; the number that failed."""
    failed = 0
    with tempfile.TemporaryDirectory(prefix=f"django-site-{server}-") as tmp:
        site_dir = Path(tmp)
        (site_dir / "download.bin").write_bytes(os.urandom(suite.DOWNLOAD_SIZE))
        bootstrap_site(site_dir)
        with serve(site_dir, SERVERS[server]) as site:
            for name in dir(suite):
                if not name.startswith("test_"):
                    continue
                try:
                    getattr(suite, name)(site)
                except Exception:  # noqa: BLE001 - report every test, then the totals
                    failed += 1
                    print(f"{server:12} FAIL {name}")
                    traceback.print_exc(limit=1)
                else:
                    print(f"{server:12} ok   {name}")
    return failed


def main(argv: list[str]) -> int:
    servers = argv or ["switchboard", "uvicorn"]
    unknown = [name for name in servers if name not in SERVERS]
    if unknown:
        print(f"unknown server(s) {unknown}; choose from {sorted(SERVERS)}", file=sys.stderr)
        return 2
    failures = {server: check(server) for server in servers}
    print(", ".join(f"{server}: {n} failed" for server, n in failures.items()))
    return 1 if any(failures.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
