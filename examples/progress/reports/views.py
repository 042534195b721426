from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from reports.tasks import build_report

STEPS = 10


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "reports/index.html")


@require_POST
async def build(request: HttpRequest) -> JsonResponse:
    result = await build_report.aenqueue(steps=STEPS)
    # The page subscribes to the task's progress topic with this id.
    return JsonResponse({"id": result.id}, status=202)
