from django.db import models


class Game(models.Model):
    home = models.CharField(max_length=60)
    away = models.CharField(max_length=60)
    home_score = models.PositiveIntegerField(default=0)
    away_score = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=60, default="Not started", blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.home} {self.home_score}-{self.away_score} {self.away}"


class Update(models.Model):
    """One line of the ticker: what changed, when."""

    game = models.ForeignKey(Game, on_delete=models.CASCADE, related_name="updates")
    text = models.CharField(max_length=200)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self) -> str:
        return self.text
