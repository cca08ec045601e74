"""One origin policy for REST (CORS) and WebSocket: exact scheme + host + port.

A socket is allowed from an origin listed in CHAT_ALLOWED_ORIGINS (the list CORS uses) or from
the page of the very host:port it connects to (the server's own test page); another port or
scheme of the server's own hosts is a foreign origin like any other.
"""

from __future__ import annotations

import pytest

from crm_backend.asgi import application
from tests import factories
from tests.security.conftest import expect_rejection, hang_up
from tests.ws import ChatCommunicator, open_socket, room_path

pytestmark = pytest.mark.django_db(transaction=True)

SERVER_HOST = "127.0.0.1:8000"


async def _socket_allowed(room, user, origin: str, *, host: str | None, headers=()) -> bool:
    handshake = [(b"origin", origin.encode()), *headers]
    if host is not None:
        handshake.append((b"host", host.encode()))
    token = factories.access_token(user)
    communicator = ChatCommunicator(application, f"{room_path(room)}?token={token}", handshake)
    connected, _ = await communicator.connect()
    assert connected
    first = await communicator.receive_json_from(timeout=3)
    if first["type"] == "connection.established":
        await hang_up(communicator)
        return True
    assert first["code"] == "origin_not_allowed", first
    closed = await communicator.receive_output(timeout=3)
    assert closed == {"type": "websocket.close", "code": 4403}
    await hang_up(communicator, 4403)
    return False


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        # the page of the host:port the socket connects to
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("http://localhost:8000", "localhost:8000", True),
        ("http://[::1]:8000", "[::1]:8000", True),
        ("http://localhost", "localhost", True),
        # the server's own hosts on another port or scheme: not the same origin
        ("http://localhost:3001", "localhost:8000", False),
        ("https://localhost:8000", "localhost:8000", False),
        ("http://127.0.0.1:8001", "127.0.0.1:8000", False),
        ("http://localhost:8000", None, False),
        # same origin on a host that is not ours (DNS rebinding)
        ("http://evil.example:8000", "evil.example:8000", False),
        ("http://user@localhost:8000", "localhost:8000", False),
        # the listed dev servers, React and Vite, exactly
        ("http://localhost:3000", SERVER_HOST, True),
        ("http://127.0.0.1:3000", SERVER_HOST, True),
        ("http://localhost:5173", SERVER_HOST, True),
        ("http://127.0.0.1:5173", SERVER_HOST, True),
        ("https://localhost:3000", SERVER_HOST, False),
        ("http://localhost:5174", SERVER_HOST, False),
    ],
)
async def test_socket_origin_is_exact_scheme_host_and_port(room, alice, origin, host, allowed):
    assert await _socket_allowed(room, alice, origin, host=host) is allowed


async def test_socket_behind_a_trusted_tls_proxy_is_same_origin_for_https(room, alice, settings):
    """As Django's request.is_secure(): X-Forwarded-Proto counts only with
    SECURE_PROXY_SSL_HEADER (DJANGO_BEHIND_TLS_PROXY)."""
    origin, host, forwarded = "https://localhost", "localhost", [(b"x-forwarded-proto", b"https")]
    assert not await _socket_allowed(room, alice, origin, host=host, headers=forwarded)
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert await _socket_allowed(room, alice, origin, host=host, headers=forwarded)
    assert not await _socket_allowed(room, alice, origin, host=host)
    assert not await _socket_allowed(room, alice, "http://localhost", host=host, headers=forwarded)


CROSS_ORIGINS = [
    "http://localhost:3000",
    "http://127.0.0.1:3000",
    "http://localhost:5173",
    "http://127.0.0.1:5173",
    "http://localhost:3001",
    "https://localhost:3000",
    "http://localhost:8000",
    "https://127.0.0.1:5173",
    "http://localhost:3000.evil.example",
    "https://evil.example",
]


def _cors_allows(client, origin: str) -> bool:
    response = client.options(
        "/api/chat/rooms/",
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization",
    )
    return response.headers.get("Access-Control-Allow-Origin") == origin


def test_rest_and_socket_decide_every_cross_origin_alike(client, room, alice):
    """From another origin than the socket's host, CORS and the socket give the same answer."""
    from asgiref.sync import async_to_sync

    for origin in CROSS_ORIGINS:
        socket = async_to_sync(_socket_allowed)(room, alice, origin, host="chat.internal:9000")
        assert socket is _cors_allows(client, origin), origin


def test_cors_exposes_retry_after_to_javascript(client):
    response = client.get("/healthz", HTTP_ORIGIN="http://localhost:5173")
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    exposed = response.headers["Access-Control-Expose-Headers"].lower().split(", ")
    assert "retry-after" in exposed


async def test_a_refused_other_port_sends_nothing_of_the_room(room, alice):
    refused = await open_socket(
        room_path(room),
        token=factories.access_token(alice),
        origin="http://localhost:3001",
        host="localhost:8000",
    )
    await expect_rejection(refused, "origin_not_allowed", 4403)
