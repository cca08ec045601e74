"""API keys of service accounts (users with `is_bot`): bots and other services."""

from django.conf import settings
from django.db import models


class ApiKey(models.Model):
    """One key of a service account, scoped to the rooms it was granted.

    The key is `<prefix>.<secret>`: the prefix finds the row (it is shown in the admin and
    logs, and means nothing without the secret); only a SHA-256 of the secret is stored, and
    the key itself is shown once, when it is made.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100, blank=True, help_text="what uses it, for people")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    rooms = models.ManyToManyField(
        "chat.Room", related_name="+", blank=True, help_text="the rooms the key reaches"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Written at most once a minute (apikeys.keys.LAST_USED_EVERY): not one write per request.
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        state = " (revoked)" if self.revoked_at else ""
        return f"{self.prefix}… of {self.user}{state}"
