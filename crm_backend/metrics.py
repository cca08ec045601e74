"""GET /metrics: Prometheus' text format, for a scraper with the token or from an allowed network.

Who may read it: a request carrying `Authorization: Bearer <CHAT_METRICS_TOKEN>` (when a token
is set), or one whose client address (accounts.client_address: behind CHAT_TRUSTED_PROXIES,
the address the proxy saw) is in CHAT_METRICS_ALLOWED_NETWORKS. Refusals answer in REST's one
error shape: 401 when a token was expected and not given, 403 otherwise.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable

from accounts.client_address import networks_setting


def metrics_networks(entries: Iterable[str]) -> tuple:
    """CHAT_METRICS_ALLOWED_NETWORKS parsed; a bad entry stops start-up."""
    return networks_setting("CHAT_METRICS_ALLOWED_NETWORKS", entries)


def metrics(request):
    from django.http import HttpResponse

    from chat.observability.metrics import exposition

    refusal = metrics_refusal(request)
    if refusal is not None:
        return refusal
    body, content_type = exposition()
    return HttpResponse(body, content_type=content_type)


def metrics_refusal(request):
    """None if the request may read the metrics, else the 401/403 answer."""
    from django.conf import settings
    from django.http import JsonResponse

    from chat.api.errors import error_body

    token = settings.CHAT_METRICS_TOKEN
    if token and _bearer_matches(request.headers.get("Authorization", ""), token):
        return None
    if _address_allowed(_scraper_address(request), settings.CHAT_METRICS_ALLOWED_NETWORKS):
        return None
    if token:
        response = JsonResponse(
            error_body("authentication_required", "metrics need the Bearer CHAT_METRICS_TOKEN"),
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    detail = "metrics are served only to CHAT_METRICS_ALLOWED_NETWORKS"
    return JsonResponse(error_body("not_allowed", detail), status=403)


def _bearer_matches(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    given = given.strip().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given, token.encode())


# Headers a reverse proxy adds: a request with one came through a proxy.
PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def _scraper_address(request) -> str | None:
    """The address the allowed networks are checked against; None for a proxied request
    whose client no trusted proxy named.

    A proxy on the same host (nginx on 127.0.0.1) makes every Internet request come from
    loopback, an allowed network by default: with CHAT_TRUSTED_PROXIES unset, the request's
    X-Forwarded-For is ignored and the peer is that loopback proxy. So a request carrying a
    proxy's header counts only as the client a trusted proxy named, never as a proxy itself
    (a header passed through unchanged: `X-Forwarded-For: 127.0.0.1`). A scraper talks to
    the server directly, without such headers, or sends the token.
    """
    from django.conf import settings

    from accounts.client_address import client_address, request_client_address

    address = request_client_address(request)
    if not any(request.META.get(header) for header in PROXY_HEADERS):
        return address
    peer = client_address(request.META.get("REMOTE_ADDR"), None, ())
    if address == peer or _address_allowed(address, settings.CHAT_TRUSTED_PROXIES):
        return None
    return address


def _address_allowed(address: str | None, networks: tuple) -> bool:
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
