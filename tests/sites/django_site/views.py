"""Views that each exercise one part of Django's request/response cycle over ASGI."""

import asyncio
import hashlib
import os

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from tests.sites.django_site.forms import ContactForm

STREAM_PARTS = [b"first part;", b"second, a little longer;", b"third and last"]


def contact(request: HttpRequest) -> HttpResponse:
    """The classic CSRF-protected form: POST, validate, flash a message, redirect."""
    form = ContactForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        messages.success(request, f"Thanks, {form.cleaned_data['name']}!")
        return redirect("contact-done")
    return render(request, "site/contact.html", {"form": form})


def contact_done(request: HttpRequest) -> HttpResponse:
    return render(request, "site/contact_done.html")


@csrf_exempt
@require_POST
def upload(request: HttpRequest) -> JsonResponse:
    """Digest of a multipart file field, and whether Django spooled it to a file on disk."""
    if "file" not in request.FILES:
        return HttpResponseBadRequest("no file field")
    uploaded = request.FILES["file"]
    digest = hashlib.sha256()
    size = 0
    for chunk in uploaded.chunks():
        digest.update(chunk)
        size += len(chunk)
    on_disk = isinstance(uploaded, TemporaryUploadedFile) and os.path.exists(
        uploaded.temporary_file_path()
    )
    return JsonResponse(
        {
            "name": uploaded.name,
            "size": size,
            "sha256": digest.hexdigest(),
            "handler_class": type(uploaded).__name__,
            "temporary_file_exists": on_disk,
            "note": request.POST.get("note"),
        }
    )


@csrf_exempt
@require_POST
def raw_body(request: HttpRequest) -> JsonResponse:
    body = request.body
    return JsonResponse(
        {
            "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "content_length_header": request.headers.get("Content-Length"),
            "transfer_encoding_header": request.headers.get("Transfer-Encoding"),
        }
    )


async def _parts():
    for part in STREAM_PARTS:
        await asyncio.sleep(0.01)  # Each part is produced separately, as a real stream would.
        yield part


def stream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(_parts(), content_type="application/octet-stream")


def download(request: HttpRequest) -> FileResponse:
    return FileResponse(open(settings.DOWNLOAD_FILE, "rb"), as_attachment=True)


async def async_view(request: HttpRequest) -> JsonResponse:
    """An ``async def`` view: runs on the server's event loop and uses the async ORM."""
    await asyncio.sleep(0.01)
    users = await get_user_model().objects.acount()
    return JsonResponse(
        {
            "running_loop": asyncio.get_running_loop() is not None,
            "in_task": asyncio.current_task() is not None,
            "users": users,
            "method": request.method,
        }
    )


def hello(request: HttpRequest) -> HttpResponse:
    response = HttpResponse("Hello from Django over ASGI.\n", content_type="text/plain")
    response["X-Hello"] = "world"
    return response


def counter(request: HttpRequest) -> JsonResponse:
    request.session["count"] = request.session.get("count", 0) + 1
    return JsonResponse({"count": request.session["count"]})
