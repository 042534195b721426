"""The publish API: other services (a worker in another language, a cron job, a webhook
receiver) publish on streams and reliable topics over HTTP.

``POST`` a JSON body (:mod:`switchboard.streams.api_schema`) with ``Authorization: Bearer
KEY``, one of ``SWITCHBOARD_PUBLISH["KEYS"]`` (:mod:`switchboard.streams.api_settings`).
Mount it with ``path("switchboard/", include("switchboard.streams.urls"))``.

Answers: ``202 {"stream" | "topic", "epoch", "offset"}`` once the publication is stored in the
history (so a subscriber that was away recovers it). Every refusal is JSON ``{"error": code,
"detail": text}``, checked in this order:

- ``404 not_found``: no keys configured, the API is off;
- ``405 method_not_allowed``: not POST (``Allow: POST``);
- ``401 unauthorized``: no key, or a wrong one (``WWW-Authenticate: Bearer``);
- ``429 rate_limited``: the key's bucket is empty (``Retry-After``);
- ``415 unsupported_media_type``: not ``application/json``;
- ``413 too_large``: the body is over ``MAX_BYTES``;
- ``400 invalid_json``: not JSON (or not UTF-8, NaN, Infinity);
- ``400 invalid_field``: a field breaks the schema (``"field"`` names it);
- ``503 unavailable``: the layer could not store the publication;
- ``500 misconfigured``: ``SWITCHBOARD_PUBLISH`` is invalid (``switchboard.E041`` said so at
  startup; the log says what).

Why 404 when off, not 403: without keys there is no credential that could ever succeed, and
a server that does not use the API should not advertise it to whoever probes.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from switchboard.streams.api_schema import (
    Publication,
    PublicationError,
    parse_json,
    parse_publication,
)
from switchboard.streams.api_settings import PublishSettingsError, publish_settings
from switchboard.streams.ratelimit import retry_after_seconds, shared_buckets

__all__ = ["publish", "publish_publication"]

logger = logging.getLogger("switchboard.streams")


def _refusal(status: int, error: str, detail: str, **extra: Any) -> JsonResponse:
    headers = extra.pop("headers", {})
    response = JsonResponse({"error": error, "detail": detail, **extra}, status=status)
    response["Cache-Control"] = "no-store"
    for name, value in headers.items():
        response[name] = value
    return response


def _bearer_token(request: HttpRequest) -> bytes | None:
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    # Header values arrive decoded as latin-1; back to the bytes that were sent.
    return token.encode("latin-1", "replace")


def _matching_key(token: bytes, keys: tuple[bytes, ...]) -> bytes | None:
    """The configured key equal to ``token``; every key is compared, whatever matched, so the
    time taken says nothing about which (or whether an early one) did."""
    found = None
    for key in keys:
        if hmac.compare_digest(token, key) and found is None:
            found = key
    return found


def _is_json(request: HttpRequest) -> bool:
    media_type, _, params = request.META.get("CONTENT_TYPE", "").partition(";")
    if media_type.strip().lower() != "application/json":
        return False
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            return False  # JSON is UTF-8 (RFC 8259)
    return True


def _declared_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0  # the server frames the body; what is read below is what counts


async def publish_publication(publication: Publication) -> dict[str, Any]:
    """Publish a checked publication through the channel layer; the 202 answer's body."""
    if publication.topic is not None:
        from switchboard.realtime.history import publish as publish_topic

        position = await publish_topic(publication.topic, publication.data)
        return {"topic": publication.topic, "epoch": position.epoch, "offset": position.offset}
    from switchboard.streams.publishing import apublish

    assert publication.stream is not None
    position = await apublish(publication.stream, publication.data, event=publication.event)
    return {"stream": publication.stream, "epoch": position.epoch, "offset": position.offset}


@csrf_exempt
async def publish(request: HttpRequest) -> HttpResponse:
    """``POST`` a publication (module docstring)."""
    try:
        config = publish_settings()
    except PublishSettingsError as exc:
        logger.error("publish API: %s", exc)
        return _refusal(500, "misconfigured", "SWITCHBOARD_PUBLISH is invalid: see the log")
    if not config.enabled:
        return _refusal(404, "not_found", "the publish API is not enabled on this server")
    if request.method != "POST":
        return _refusal(
            405, "method_not_allowed", f"use POST, not {request.method}", headers={"Allow": "POST"}
        )
    token = _bearer_token(request)
    key = _matching_key(token, config.keys) if token is not None else None
    if key is None:
        detail = "send Authorization: Bearer <key>" if token is None else "the key is not valid"
        challenge = "Bearer" if token is None else 'Bearer error="invalid_token"'
        return _refusal(401, "unauthorized", detail, headers={"WWW-Authenticate": challenge})
    wait = shared_buckets(config.rate, config.burst).take(key)
    if wait > 0:
        seconds = retry_after_seconds(wait)
        return _refusal(
            429,
            "rate_limited",
            f"more than {config.rate:g} publications per second for this key; retry in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )
    if not _is_json(request):
        return _refusal(415, "unsupported_media_type", "send Content-Type: application/json")
    too_large = f"the body is over {config.max_bytes} bytes"
    if _declared_length(request) > config.max_bytes:
        return _refusal(413, "too_large", too_large)
    # Read one byte past the limit whatever Content-Length said (a chunked body has none).
    body = request.read(config.max_bytes + 1)
    if len(body) > config.max_bytes:
        return _refusal(413, "too_large", too_large)
    try:
        parsed = parse_json(body)
    except RecursionError:
        return _refusal(400, "invalid_json", "the JSON is nested too deeply")
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return _refusal(400, "invalid_json", f"the body is not JSON: {exc}")
    try:
        publication = parse_publication(parsed)
    except PublicationError as exc:
        return _refusal(400, "invalid_field", f"{exc.field}: {exc.detail}", field=exc.field)
    try:
        answer = await publish_publication(publication)
    except Exception:
        logger.exception("publish API: the publication could not be stored")
        return _refusal(503, "unavailable", "the publication could not be stored; try again")
    response = JsonResponse(answer, status=202)
    response["Cache-Control"] = "no-store"
    return response
