"""Two games to score, so the board shows something on its first run."""

from django.db import migrations

FIXTURES = [("Rovers", "United"), ("City", "Athletic")]


def add_fixtures(apps, schema_editor):
    Game = apps.get_model("games", "Game")
    for home, away in FIXTURES:
        Game.objects.create(home=home, away=away)


class Migration(migrations.Migration):
    dependencies = [("games", "0001_initial")]

    operations = [migrations.RunPython(add_fixtures, migrations.RunPython.noop)]
