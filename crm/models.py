"""The example CRM: deals, each discussed in its own chat room (chat.domain.records)."""

from django.conf import settings
from django.db import models


class Deal(models.Model):
    class Stage(models.TextChoices):
        LEAD = "lead", "lead"
        PROPOSAL = "proposal", "proposal"
        NEGOTIATION = "negotiation", "negotiation"
        WON = "won", "won"
        LOST = "lost", "lost"

    CLOSED_STAGES = (Stage.WON, Stage.LOST)

    title = models.CharField(max_length=200)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_deals"
    )
    team = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="deals")
    stage = models.CharField(max_length=20, choices=Stage.choices, default=Stage.LEAD)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"Negócio: {self.title}"

    @property
    def closed(self) -> bool:
        return self.stage in self.CLOSED_STAGES
