"""Connection tickets: `POST /api/chat/ws-ticket/` → `?ticket=` on the WebSocket URL.

Browsers cannot send headers on a WebSocket, so a token would travel in the URL, where proxies
and servers may log it. A ticket is useless soon after: it opens one socket, once, within
CHAT_TICKET_SECONDS.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from accounts.models import ConnectionTicket


def _digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode("utf-8", "replace")).hexdigest()


def ticket_issue(*, user, token_expires_at: float) -> str:
    """A new ticket for `user`; sockets opened with it close when the user's token expires."""
    now = timezone.now()
    ConnectionTicket.objects.filter(expires_at__lt=now - timedelta(hours=1)).delete()
    ticket = secrets.token_urlsafe(32)
    ConnectionTicket.objects.create(
        digest=_digest(ticket),
        user=user,
        expires_at=now + timedelta(seconds=settings.CHAT_TICKET_SECONDS),
        session_expires_at=datetime.fromtimestamp(token_expires_at, tz=UTC),
    )
    return ticket


def ticket_redeem(ticket: str) -> ConnectionTicket | None:
    """The ticket's record if it is genuine, unused and unexpired; it is then used up."""
    if len(ticket) > 100:
        return None
    now = timezone.now()
    claimed = ConnectionTicket.objects.filter(
        digest=_digest(ticket), used_at__isnull=True, expires_at__gt=now
    ).update(used_at=now)
    if claimed != 1:
        return None
    return ConnectionTicket.objects.select_related("user").get(digest=_digest(ticket))
