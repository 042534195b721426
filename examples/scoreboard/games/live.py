"""Scoring: change a game, note it in the ticker, and publish both to every open board.

The staff form (views.staff) and `manage.py score` both come here. The board pages listen to
the signed stream ``scores``: one publication per change, an HTML fragment rendered once by
``publish_html`` and sent as is to every page. The fragment (games/live_update.html) is made
of out-of-band swaps, elements that say where they go: the game's card replaces the card with
its id, and the ticker line goes to the top of ``#ticker``. htmx's ws extension swaps every
message that way; the sse extension does it for the events named in ``sse-swap`` ("score").
"""

from __future__ import annotations

from django.db import transaction

from games.models import Game, Update
from switchboard.streams import publish_html

STREAM = "scores"
EVENT = "score"


def score(game: Game, side: str | None = None, status: str | None = None) -> Update:
    """A goal for ``side`` ("home" or "away") and/or a new ``status`` ("Half time"), saved,
    then published once the transaction commits (a page never shows what was rolled back)."""
    with transaction.atomic():
        game = Game.objects.select_for_update().get(pk=game.pk)
        if side == "home":
            game.home_score += 1
        elif side == "away":
            game.away_score += 1
        elif side is not None:
            raise ValueError(f"side is 'home' or 'away', not {side!r}")
        if status is not None:
            game.status = status
        game.save()
        if side is not None:
            scorer = game.home if side == "home" else game.away
            text = f"Goal for {scorer}! {game}"
        else:
            text = f"{game.status}: {game}"
        update = Update.objects.create(game=game, text=text)
        transaction.on_commit(lambda: publish_update(game, update))
    return update


def publish_update(game: Game, update: Update) -> None:
    publish_html(STREAM, "games/live_update.html", {"game": game, "update": update}, event=EVENT)
