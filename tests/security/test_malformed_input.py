"""Malformed input never becomes a 500 or a 1011 (issue 15, items 5 and 12).

JSON nested deeper than the server parses, numbers Python cannot hold, odd Unicode: on a
socket (a real room and the public room) an error frame with a protocol code, the socket stays
open and nothing is stored; over REST (login, refresh, rooms, messages) a 400.
"""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from django.test import AsyncClient
from rest_framework.test import APIClient

from chat.domain.models import Message, Room
from chat.json_input import MAX_JSON_DEPTH
from tests import factories
from tests.security.conftest import assert_silent, hang_up, send_text, settle, stored_count
from tests.security.test_frames import expect_frame_error
from tests.ws import joined, room_path

pytestmark = pytest.mark.django_db(transaction=True)

PUBLIC = "/ws/chat/teste/"
DEEP = 1000  # what used to raise RecursionError inside json.loads (2 KB of brackets)


def nested_list(depth: int) -> str:
    return "[" * depth + "]" * depth


def nested_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def with_extra(value: str) -> str:
    """A well-formed message frame carrying `value` in a field the server ignores."""
    return '{"message": "x", "extra": ' + value + "}"


TOO_LONG_NUMBER = "9" * 5000  # Python refuses to turn more than 4300 digits into an int

MALFORMED_FRAMES = {
    "deep-list": (nested_list(DEEP), "invalid_frame"),
    "deep-object": (nested_object(DEEP), "invalid_frame"),
    "deep-in-ignored-field": (with_extra(nested_list(DEEP)), "invalid_frame"),
    "one-too-deep": (with_extra(nested_list(MAX_JSON_DEPTH)), "invalid_frame"),
    # 60,000 unclosed brackets: refused by counting, before the parser sees them
    "unclosed-brackets": ("[" * 60_000, "invalid_json"),
    "brackets-in-strings-do-not-count": (
        '{"message": 1, "extra": "' + "[" * 5000 + '"}',
        "invalid_frame",  # because 'message' is not a string, not because of depth
    ),
    "5000-digit-number": ('{"message": "x", "extra": ' + TOO_LONG_NUMBER + "}", "invalid_json"),
    "5000-digit-after": ('{"type": "chat.sync", "after": ' + TOO_LONG_NUMBER + "}", "invalid_json"),
    "1e400-after": ('{"type": "chat.sync", "after": 1e400}', "invalid_frame"),
    "1e400-message": ('{"message": 1e400}', "invalid_frame"),
    "-1e400-message-id": ('{"type": "chat.delete", "message_id": -1e400}', "invalid_frame"),
    "nul-in-client-id": ('{"message": "x", "client_id": "a\\u0000b"}', "invalid_frame"),
    "control-in-client-id": ('{"message": "x", "client_id": "a\\u001fb"}', "invalid_frame"),
    "del-in-client-id": ('{"message": "x", "client_id": "a\\u007fb"}', "invalid_frame"),
    "c1-in-client-id": ('{"message": "x", "client_id": "a\\u0085b"}', "invalid_frame"),
}
ROOM_ONLY_FRAMES = {
    "4000-digit-message-id": (
        '{"type": "read", "message_id": ' + "9" * 4000 + "}",
        "message_not_found",
    ),
    "4000-digit-edit": (
        '{"type": "chat.edit", "message": "x", "message_id": ' + "9" * 4000 + "}",
        "message_not_found",
    ),
}
PUBLIC_ROOM_FRAMES = {
    "lone-surrogate-username": ('{"message": "x", "username": "\\ud800"}', "invalid_frame"),
}


@pytest.fixture
async def pair(room, alice, bob):
    """alice sends, bob listens: both joined to the same room."""
    sender = await joined(room_path(room), token=factories.access_token(alice))
    listener = await joined(room_path(room), token=factories.access_token(bob))
    await settle(sender, listener)
    yield sender, listener
    await hang_up(sender)
    await hang_up(listener)


@pytest.fixture
async def public_pair(db):
    sender, listener = await joined(PUBLIC), await joined(PUBLIC)
    yield sender, listener
    await hang_up(sender)
    await hang_up(listener)


@pytest.mark.parametrize(
    ("text", "code"),
    list({**MALFORMED_FRAMES, **ROOM_ONLY_FRAMES}.values()),
    ids=list({**MALFORMED_FRAMES, **ROOM_ONLY_FRAMES}),
)
async def test_room_malformed_frame_is_an_error_frame_and_the_socket_stays_open(
    pair, text, code, caplog
):
    sender, listener = pair
    await send_text(sender, text)
    await expect_frame_error(sender, code)
    await assert_open_and_silent(sender, listener)
    assert await stored_count() == 0
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")], caplog.text


@pytest.mark.parametrize(
    ("text", "code"),
    list({**MALFORMED_FRAMES, **PUBLIC_ROOM_FRAMES}.values()),
    ids=list({**MALFORMED_FRAMES, **PUBLIC_ROOM_FRAMES}),
)
async def test_public_room_malformed_frame_is_an_error_frame_and_the_socket_stays_open(
    public_pair, text, code, caplog
):
    sender, listener = public_pair
    await send_text(sender, text)
    await expect_frame_error(sender, code)
    await assert_open_and_silent(sender, listener)
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")], caplog.text


async def test_room_nesting_up_to_the_limit_is_accepted(pair):
    """The bound is the frame's depth, the frame object itself counting as the first level."""
    sender, listener = pair
    await send_text(sender, with_extra(nested_list(MAX_JSON_DEPTH - 1)))
    stored = await sender.receive_json_from()
    assert stored["message"] == "x"
    assert stored == await listener.receive_json_from()
    assert await stored_count() == 1


async def test_room_control_characters_in_text_are_stored_byte_exact(pair, room, alice):
    """One rule for message text on both transports: control characters, NUL included, are
    data (chat.domain.fields.NulSafeTextField stores NUL on PostgreSQL); client ids refuse them."""
    sender, listener = pair
    payload = "a\x00b\x1fc\x7fd\x85e"
    await sender.send_json_to({"message": payload, "client_id": "ok-1"})
    reply = await sender.receive_json_from()
    assert reply == await listener.receive_json_from()
    assert (reply["message"], reply["client_id"]) == (payload, "ok-1")
    assert [m.text async for m in Message.objects.all()] == [payload]


async def assert_open_and_silent(sender, listener) -> None:
    await sender.send_json_to({"type": "ping"})
    assert await sender.receive_json_from() == {"type": "pong"}, "an error frame never closes"
    await assert_silent(sender, listener)


# --- REST ---------------------------------------------------------------------------------

DEEP_BODY = nested_object(DEEP)
MALFORMED_BODIES = {
    "deep-object": DEEP_BODY,
    "deep-list": nested_list(DEEP),
    "deep-in-a-field": '{"username": "alice", "password": ' + nested_list(DEEP) + "}",
    "unclosed-brackets": "[" * 60_000,
    "5000-digit-number": '{"name": ' + TOO_LONG_NUMBER + "}",
}
# JSON that parses: each endpoint's fields refuse it (DRF refuses lone surrogates in strings).
ODD_UNICODE_BODIES = {
    "lone-surrogate": '{"username": "\\ud800", "password": "x", "refresh": "\\udfff", '
    '"name": "\\ud800", "message": "\\ud800", "user_id": "\\ud800", "message_id": "\\ud800"}',
    "lone-surrogate-key": '{"\\ud800": 1}',
}


@pytest.fixture(autouse=True)
def no_throttle_carryover():
    cache.clear()
    yield
    cache.clear()


def endpoints(room, message) -> dict[str, tuple[str, str, bool]]:
    """name: (method, path, authenticated)"""
    return {
        "login": ("post", "/api/auth/token/", False),
        "refresh": ("post", "/api/auth/token/refresh/", False),
        "rooms": ("post", "/api/chat/rooms/", True),
        "members": ("post", f"/api/chat/rooms/{room.pk}/members/", True),
        "read": ("post", f"/api/chat/rooms/{room.pk}/read/", True),
        "edit": ("patch", f"/api/chat/rooms/{room.pk}/messages/{message.pk}/", True),
        "direct": ("post", "/api/chat/direct/", True),
    }


ENDPOINT_NAMES = ["login", "refresh", "rooms", "members", "read", "edit", "direct"]


@pytest.mark.parametrize("endpoint", ENDPOINT_NAMES)
@pytest.mark.parametrize("body", list(MALFORMED_BODIES.values()), ids=list(MALFORMED_BODIES))
async def test_rest_malformed_json_body_is_400(room, alice, endpoint, body, caplog):
    message = await Message.objects.acreate(room=room, author=alice, text="antes")
    method, path, authenticated = endpoints(room, message)[endpoint]
    headers = {"Authorization": f"Bearer {factories.access_token(alice)}"} if authenticated else {}
    client = AsyncClient(raise_request_exception=False)

    response = await getattr(client, method)(
        path, data=body, content_type="application/json", headers=headers
    )

    assert response.status_code == 400, response.content[:300]
    assert set(response.json()) == {"code", "detail"}  # REST's one error shape
    assert response.json()["code"] == "invalid_json"
    assert "Traceback" not in response.content.decode()
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")], caplog.text
    assert (await Message.objects.aget(pk=message.pk)).text == "antes"
    assert await Room.objects.acount() == 1


@pytest.mark.parametrize("endpoint", ENDPOINT_NAMES)
@pytest.mark.parametrize("body", list(ODD_UNICODE_BODIES.values()), ids=list(ODD_UNICODE_BODIES))
async def test_rest_odd_unicode_body_is_400(room, alice, endpoint, body, caplog):
    message = await Message.objects.acreate(room=room, author=alice, text="antes")
    method, path, authenticated = endpoints(room, message)[endpoint]
    headers = {"Authorization": f"Bearer {factories.access_token(alice)}"} if authenticated else {}
    client = AsyncClient(raise_request_exception=False)

    response = await getattr(client, method)(
        path, data=body, content_type="application/json", headers=headers
    )

    assert response.status_code == 400, response.content[:300]
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")], caplog.text
    assert (await Message.objects.aget(pk=message.pk)).text == "antes"


@pytest.mark.parametrize(
    ("endpoint", "body", "status"),
    [
        ("login", {"username": 1e400, "password": "x"}, 401),
        ("refresh", {"refresh": -1e400}, 401),
        ("rooms", {"name": "x", "type": 1e400}, 400),
        ("members", {"user_id": 1e400}, 400),
        ("members", {"user_id": 10**4000}, 404),
        ("read", {"message_id": 10**4000}, 404),
        ("direct", {"user_id": -(10**4000)}, 404),
    ],
)
def test_rest_huge_numbers_are_refused_not_500(room, alice, endpoint, body, status):
    message = Message.objects.create(room=room, author=alice, text="antes")
    method, path, authenticated = endpoints(room, message)[endpoint]
    client = APIClient()
    if authenticated:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {factories.access_token(alice)}")
    raw = json.dumps(body)  # float("inf") is written as Infinity, which DRF refuses: use 1e400
    raw = raw.replace("-Infinity", "-1e400").replace("Infinity", "1e400")

    response = getattr(client, method)(path, data=raw, content_type="application/json")

    assert response.status_code == status, response.content[:300]


def test_rest_edit_keeps_nul_and_control_characters_byte_exact(room, alice):
    """The socket's rule for text, over REST: NUL is data (it used to be a 400 here)."""
    message = Message.objects.create(room=room, author=alice, text="antes")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {factories.access_token(alice)}")
    payload = "a\x00b\x1fc\x7fd"

    response = client.patch(
        f"/api/chat/rooms/{room.pk}/messages/{message.pk}/", {"message": payload}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["message"] == payload
    message.refresh_from_db()
    assert message.text == payload
    history = client.get(f"/api/chat/rooms/{room.pk}/messages/").json()["results"]
    assert [item["message"] for item in history] == [payload]
