"""htmx and its sse/ws extensions for the browser tests, fetched once from the npm registry.

htmx is not part of the repository: the examples load it from a CDN with Subresource
Integrity. The tests must not depend on that CDN, so they serve the very same files from the
test server. :func:`htmx_assets` gets each pinned package with ``npm pack <name>@<version>``
(the npm client, from the registry npm is configured with), takes the one file the page loads
out of the tarball, and keeps it under ``.cache/htmx/`` (git-ignored) for the next runs. Every
file, fetched or cached, is checked against the SHA-384 pinned here, the value a page puts in
its ``integrity`` attribute, so a cached or fetched file that differs is never served.

When npm or the registry cannot be reached the tests skip (:func:`htmx_assets_or_skip`),
except with ``CI=true``, where they fail: CI must run them.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "htmx"
CDN = "https://cdn.jsdelivr.net/npm"


@dataclass(frozen=True)
class Asset:
    package: str
    version: str
    path: str  # inside the package (npm tarballs put it under "package/")
    integrity: str  # "sha384-<base64>", as in a <script integrity> attribute

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def cdn_url(self) -> str:
        return f"{CDN}/{self.package}@{self.version}/{self.path}"


# Pinned: bump the version and its hash together (and the example's settings: the scoreboard
# test checks the page loads exactly these).
ASSETS = {
    "htmx": Asset(
        "htmx.org",
        "2.0.11",
        "dist/htmx.min.js",
        "sha384-2OatzQy1H+Zd/IIrjr1TcuDGqLXeHhbooAyJY1KdQMKnr4LZ22k31GBLdYKHmVjg",
    ),
    "sse": Asset(
        "htmx-ext-sse",
        "2.2.4",
        "dist/sse.min.js",
        "sha384-A986SAtodyH8eg8x8irJnYUk7i9inVQqYigD6qZ9evobksGNIXfeFvDwLSHcp31N",
    ),
    "ws": Asset(
        "htmx-ext-ws",
        "2.0.4",
        "dist/ws.min.js",
        "sha384-1RwI/nvUSrMRuNj7hX1+27J8XDdCoSLf0EjEyF69nacuWyiJYoQ/j39RT1mSnd2G",
    ),
}


class HtmxUnavailable(RuntimeError):
    """A pinned file could not be fetched, or it did not match its pinned hash."""


def integrity_of(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")


def asset_dir() -> Path:
    """The directory holding every pinned file under its own name (``htmx.min.js``,
    ``sse.min.js``, ``ws.min.js``), fetching what is missing; raises
    :class:`HtmxUnavailable`."""
    directory = CACHE / "-".join(f"{a.package}@{a.version}" for a in ASSETS.values())
    for asset in ASSETS.values():
        target = directory / asset.filename
        if target.exists() and integrity_of(target.read_bytes()) == asset.integrity:
            continue
        data = _fetch(asset)
        directory.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: a concurrent run never reads half a file.
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        partial.write_bytes(data)
        partial.replace(target)
    return directory


def _fetch(asset: Asset) -> bytes:
    npm = shutil.which("npm")
    if npm is None:
        raise HtmxUnavailable("npm is not installed")
    spec = f"{asset.package}@{asset.version}"
    with tempfile.TemporaryDirectory(prefix="htmx-pack-") as scratch:
        try:
            done = subprocess.run(
                [npm, "pack", spec, "--pack-destination", scratch, "--silent"],
                cwd=scratch,
                capture_output=True,
                timeout=120,
            )
        except subprocess.TimeoutExpired:
            raise HtmxUnavailable(f"npm pack {spec} took over 120 s") from None
        tarballs = list(Path(scratch).glob("*.tgz"))
        if done.returncode != 0 or len(tarballs) != 1:
            raise HtmxUnavailable(
                f"npm pack {spec} failed ({done.returncode}): {done.stderr.decode()[-2000:]}"
            )
        with tarfile.open(tarballs[0]) as tarball:
            member = tarball.extractfile(f"package/{asset.path}")
            if member is None:
                raise HtmxUnavailable(f"{spec} has no {asset.path}")
            data = member.read()
    if integrity_of(data) != asset.integrity:
        raise HtmxUnavailable(
            f"{spec} {asset.path} is {integrity_of(data)}, pinned {asset.integrity}"
        )
    return data


def htmx_assets_or_skip() -> Path:
    """:func:`asset_dir` for a test: skips when the files cannot be had, but fails in CI."""
    import pytest

    try:
        return asset_dir()
    except HtmxUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"htmx assets unavailable in CI: {exc}")
        pytest.skip(f"htmx assets unavailable: {exc}")
