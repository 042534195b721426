from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from games import live
from games.models import Game
from switchboard.layers import get_channel_layer


class Command(BaseCommand):
    help = "Score a goal and/or set a game's status; every open board shows it at once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("game", type=int, help="the game's id (see the board)")
        parser.add_argument("side", nargs="?", choices=["home", "away"], help="who scored")
        parser.add_argument("--status", help='the new status, e.g. "Half time"')

    def handle(
        self, *args: Any, game: int, side: str | None, status: str | None, **options: Any
    ) -> None:
        if side is None and status is None:
            raise CommandError("give a side (home or away), --status, or both")
        if not getattr(get_channel_layer(), "spans_processes", True):
            # This process's own in-memory layer: no page would ever see it.
            self.stderr.write(
                "Warning: the channel layer is this process's own, so open boards won't see "
                "this before a reload. Run the server and this command with the same "
                "SCOREBOARD_IPC_PATH or SCOREBOARD_REDIS_URL."
            )
        try:
            found = Game.objects.get(pk=game)
        except Game.DoesNotExist:
            raise CommandError(f"no game with id {game}") from None
        update = live.score(found, side, status)
        self.stdout.write(f"Published: {update.text}")
