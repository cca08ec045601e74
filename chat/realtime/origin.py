"""Which browser pages may open a chat socket (the Origin header of the handshake).

One policy for REST and WebSocket, exact scheme + host + port: an origin listed in
CHAT_ALLOWED_ORIGINS (CORS_ALLOWED_ORIGINS is the same list, and `listed_origin` compares as
django-cors-headers does), and, for sockets, the page of the very host the socket connects to
(same origin, the Host header being one of ALLOWED_HOSTS): the server's own test page.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def handshake_header(scope: dict, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", []):
        if name == wanted:
            return value.decode("latin-1")
    return None


def handshake_origin(scope: dict) -> str | None:
    return handshake_header(scope, b"origin")


def origin_allowed(scope: dict, *, public_room: bool) -> bool:
    """Listed origins and the socket's own host; no Origin at all (scripts) is fine."""
    origin = handshake_origin(scope)
    if origin is None:
        return True
    if origin == "null":  # a page opened from disk
        return public_room and settings.DEBUG
    parts = _split_origin(origin)
    if parts is None:
        return False
    return _listed(parts) or _same_origin(parts, scope)


def listed_origin(origin: str) -> bool:
    """In CHAT_ALLOWED_ORIGINS: the rule CORS applies to the same list (scheme and host:port)."""
    parts = _split_origin(origin)
    return parts is not None and _listed(parts)


def _split_origin(origin: str) -> SplitResult | None:
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 - raises ValueError for "http://localhost:3000.evil.example"
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return parts


def _listed(parts: SplitResult) -> bool:
    return any(
        listed.scheme == parts.scheme and listed.netloc == parts.netloc
        for listed in map(urlsplit, settings.CHAT_ALLOWED_ORIGINS)
    )


def _same_origin(parts: SplitResult, scope: dict) -> bool:
    """The page came from the host:port this socket connects to, with the socket's scheme."""
    host_header = handshake_header(scope, b"host")
    if not host_header or parts.username is not None or parts.password is not None:
        return False
    domain, port = split_domain_port(host_header)
    if not domain or not validate_host(domain, _allowed_hosts()):
        return False
    page_scheme = _page_scheme(scope)
    host_port = int(port) if port else DEFAULT_PORTS[page_scheme]
    origin_host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return (
        parts.scheme == page_scheme
        and origin_host == domain
        and (parts.port or DEFAULT_PORTS[parts.scheme]) == host_port
    )


def _page_scheme(scope: dict) -> str:
    """https for wss, or behind a TLS proxy trusted by SECURE_PROXY_SSL_HEADER (as Django's
    request.is_secure() does for HTTP); daphne itself puts no scheme in a socket's scope."""
    if scope.get("scheme") == "wss":
        return "https"
    trusted = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if trusted:
        header, secure_value = trusted
        name = header.removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1")
        value = handshake_header(scope, name)
        if value is not None and value.split(",", 1)[0].strip() == secure_value:
            return "https"
    return "http"


def _allowed_hosts() -> list[str]:
    if settings.DEBUG and not settings.ALLOWED_HOSTS:
        return [".localhost", "127.0.0.1", "[::1]"]
    return settings.ALLOWED_HOSTS
