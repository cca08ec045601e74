"""Which browser pages may open a chat socket (the Origin header of the handshake)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import validate_host


def handshake_origin(scope: dict) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"origin":
            return value.decode("latin-1")
    return None


def origin_allowed(scope: dict, *, public_room: bool) -> bool:
    """The server's own hosts and CHAT_ALLOWED_ORIGINS; no Origin at all (scripts) is fine."""
    origin = handshake_origin(scope)
    if origin is None:
        return True
    if origin == "null":  # a page opened from disk
        return public_room and settings.DEBUG
    if origin in settings.CHAT_ALLOWED_ORIGINS:
        return True
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 - raises ValueError for "http://localhost:3000.evil.example"
    except ValueError:
        return False
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        return False
    if ":" in host:
        host = f"[{host}]"
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
    return validate_host(host, allowed_hosts)
