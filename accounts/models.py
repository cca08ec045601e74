from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """The CRM user; a custom model from the first migration so it can grow without pain."""

    # A service account (apikeys): it authenticates with API keys only (no usable password),
    # and what it posts is marked `user.is_bot` on the wire. A column of the user, not a table
    # of its own: history pages already join the author, so the flag costs no further join.
    is_bot = models.BooleanField(default=False, db_default=False)  # raw INSERTs need not name it


class ConnectionTicket(models.Model):
    """A single-use, short-lived ticket to open one WebSocket without a token in the URL.

    Only a SHA-256 of the ticket is stored; the ticket itself is shown once, to its owner.
    """

    digest = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField(db_index=True)
    # The access token's own expiry: a socket opened with the ticket closes then, as with
    # the token itself.
    session_expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"ticket of {self.user} until {self.expires_at:%H:%M:%S}"
