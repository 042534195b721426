from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from games import live
from games.models import Game, Update

TICKER_LENGTH = 10


def _board_context() -> dict[str, object]:
    return {
        "games": Game.objects.all(),
        "updates": Update.objects.select_related("game")[:TICKER_LENGTH],
        "stream": live.STREAM,
        "event": live.EVENT,
    }


def board(request: HttpRequest) -> HttpResponse:
    """The board, kept live by htmx's sse extension (an EventSource)."""
    return render(request, "games/board_sse.html", _board_context())


def ws_board(request: HttpRequest) -> HttpResponse:
    """The same board, kept live by htmx's ws extension (a WebSocket)."""
    return render(request, "games/board_ws.html", _board_context())


@staff_member_required
@require_http_methods(["GET", "POST"])
def staff(request: HttpRequest) -> HttpResponse:
    """A plain form (no JavaScript at all): a goal for either side, or a new status."""
    if request.method == "POST":
        game = get_object_or_404(Game, pk=request.POST.get("game"))
        side = request.POST.get("side") or None
        status = request.POST.get("status", "").strip()[:60] or None
        if side not in (None, "home", "away") or (side is None and status is None):
            messages.error(request, "Choose a side, or type a status.")
        else:
            update = live.score(game, side, status)
            messages.success(request, f"Published: {update.text}")
        return redirect("staff")
    return render(request, "games/staff.html", {"games": Game.objects.all()})
