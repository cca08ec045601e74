"""REST's budget for writes: a user posting, editing, deleting, marking read or changing a room
over REST spends CHAT_REST_WRITE_RATE (per server process, like the socket's limits), so REST is
no way around the socket's message limits. Reads are not throttled."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import UserRateThrottle


class ChatWriteThrottle(UserRateThrottle):
    scope = "chat_writes"

    def allow_request(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return super().allow_request(request, view)
