"""Hostile frames from an authenticated member, through the real ASGI app.

A refused frame gets the exact error code, the socket stays open (or closes with the exact code
for size and binary), nothing is stored and the other member receives nothing. Accepted payloads
come back byte-exact: in the broadcast frame, in the database and from the history API.
"""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.test import AsyncClient

from chat.domain.models import Message
from tests import factories
from tests.factories import make_room
from tests.security.conftest import (
    FRAME_ERROR_CODES,
    assert_no_leak,
    assert_silent,
    expect_rejection,
    hang_up,
    send_text,
    settle,
    stored_count,
)
from tests.ws import joined, room_path

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def pair(room, alice, bob):
    """alice sends, bob listens: both joined to the same room."""
    sender = await joined(room_path(room), token=factories.access_token(alice))
    listener = await joined(room_path(room), token=factories.access_token(bob))
    await settle(sender, listener)
    yield sender, listener
    await hang_up(sender)
    await hang_up(listener)


BAD_FRAMES = [
    # not JSON
    ("not json", "invalid_json"),
    ("{", "invalid_json"),
    ("{'message': 'aspas simples'}", "invalid_json"),
    ('{"message": "sem fim"', "invalid_json"),
    ('{"message": "raw \x00 control"}', "invalid_json"),
    ("", "invalid_json"),
    # JSON, but not an object
    ("[1, 2]", "invalid_frame"),
    ('[{"message": "em lista"}]', "invalid_frame"),
    ('"text"', "invalid_frame"),
    ("42", "invalid_frame"),
    ("null", "invalid_frame"),
    ("true", "invalid_frame"),
    # wrong types
    ("{}", "invalid_frame"),
    ('{"type": "chat.message"}', "invalid_frame"),
    ('{"message": 42}', "invalid_frame"),
    ('{"message": null}', "invalid_frame"),
    ('{"message": ["a"]}', "invalid_frame"),
    ('{"message": {"text": "a"}}', "invalid_frame"),
    ('{"message": true}', "invalid_frame"),
    ('{"message": "x", "client_id": 5}', "invalid_frame"),
    ('{"message": "x", "client_id": ["c"]}', "invalid_frame"),
    ('{"message": "x", "client_id": ""}', "invalid_frame"),
    ('{"message": "x", "client_id": "' + "c" * 65 + '"}', "invalid_frame"),
    ('{"type": "chat.sync", "after": "1"}', "invalid_frame"),
    ('{"type": "chat.sync", "after": -1}', "invalid_frame"),
    ('{"type": "chat.sync", "after": 1.5}', "invalid_frame"),
    ('{"type": "chat.sync", "after": true}', "invalid_frame"),
    # types the client may not use: no dispatch on client-supplied names
    ('{"type": 1}', "unknown_type"),
    ('{"type": "chat.purge"}', "unknown_type"),
    ('{"type": "room.join", "room": "x"}', "unknown_type"),
    ('{"type": "chat_broadcast", "frame": "spoof"}', "unknown_type"),
    ('{"type": "chat.broadcast", "frame": "spoof"}', "unknown_type"),
    ('{"type": "member.removed", "user_id": 1}', "unknown_type"),
    ('{"type": "websocket.disconnect"}', "unknown_type"),
    ('{"type": "__init__"}', "unknown_type"),
    ('{"type": "CHAT.MESSAGE", "message": "x"}', "unknown_type"),
    ('{"type": "chat.message ", "message": "x"}', "unknown_type"),
    # empty
    ('{"message": ""}', "empty_message"),
    ('{"message": "   "}', "empty_message"),
    ('{"message": " \\n\\t\\r "}', "empty_message"),
    ('{"message": "\\u3000\\u00a0"}', "empty_message"),
]


@pytest.mark.parametrize(("text", "code"), BAD_FRAMES)
async def test_frame_refused_with_code_and_no_trace(pair, text, code):
    sender, listener = pair
    await send_text(sender, text)
    await expect_frame_error(sender, code)
    await assert_still_open_and_nothing_stored(sender, listener)


@pytest.mark.parametrize("text", ['{"type": []}', '{"type": {}, "message": "x"}'])
async def test_frame_unhashable_type_is_unknown_type(pair, text):
    sender, listener = pair
    await send_text(sender, text)
    await expect_frame_error(sender, "unknown_type")
    await assert_still_open_and_nothing_stored(sender, listener)


async def test_frame_message_of_limit_plus_one_is_refused_and_limit_is_stored(pair):
    sender, listener = pair
    limit = settings.CHAT_MAX_MESSAGE_LENGTH
    for too_long in ["a" * (limit + 1), "😀" * (limit + 1)]:
        await sender.send_json_to({"message": too_long})
        await expect_frame_error(sender, "message_too_long")
    await assert_still_open_and_nothing_stored(sender, listener)

    exactly = "😀" * limit  # the limit counts characters, not bytes or UTF-16 units
    await sender.send_json_to({"message": exactly})
    acknowledged = await sender.receive_json_from()
    assert acknowledged == await listener.receive_json_from()
    assert acknowledged["message"] == exactly
    assert [m.text for m in await _messages()] == [exactly]


async def test_frame_spoofed_identity_fields_are_ignored(pair, room, alice, bob):
    """Author, room, id and time come from the token and the server, never from the frame."""
    sender, listener = pair
    other_room = await _room_of(alice, bob)
    spoof = {
        "type": "chat.message",
        "message": "quem sou eu?",
        "user": {"id": bob.pk, "username": "bob"},
        "user_id": bob.pk,
        "author": bob.pk,
        "author_id": bob.pk,
        "username": "bob",
        "room": str(other_room.pk),
        "room_id": str(other_room.pk),
        "id": 999_999,
        "created_at": "1999-01-01T00:00:00.000000Z",
    }
    await sender.send_json_to(spoof)
    acknowledged = await sender.receive_json_from()
    assert acknowledged == await listener.receive_json_from()
    assert acknowledged["user"] == {"id": alice.pk, "username": "alice"}
    assert acknowledged["room"] == str(room.pk)
    assert acknowledged["id"] != 999_999
    assert not acknowledged["created_at"].startswith("1999")
    [stored] = await _messages()
    assert (stored.author_id, stored.room_id, stored.id) == (alice.pk, room.pk, acknowledged["id"])


@pytest.mark.parametrize(
    ("frame", "code", "close_code"),
    [
        ({"text": json.dumps({"message": "a" * 200 * 1024})}, "frame_too_big", 1009),
        # 80,000 bytes in 20,000 characters: the cap counts UTF-8 bytes, not characters.
        (
            {"text": json.dumps({"message": "😀" * 20_000}, ensure_ascii=False)},
            "frame_too_big",
            1009,
        ),
        ({"bytes": b"\x00\x01"}, "binary_not_supported", 1003),
        ({"bytes": json.dumps({"message": "binário"}).encode()}, "binary_not_supported", 1003),
    ],
    ids=["200KiB", "80kB-of-emoji", "binary", "binary-json"],
)
async def test_frame_too_big_or_binary_closes_and_stores_nothing(pair, frame, code, close_code):
    sender, listener = pair
    await sender.send_input({"type": "websocket.receive", **frame})
    await expect_rejection(sender, code, close_code, hang_up_after=False)
    await assert_silent(listener)
    assert await stored_count() == 0
    await hang_up(sender, close_code)


PAYLOADS = {
    "script-tag": "<script>alert(1)</script>",
    "html-attr": '"><img src=x onerror=alert(1)>',
    "sql": "'; DROP TABLE chat_message; --",
    "rtl-override": "invoice\u202etxt.exe",
    "emoji": "😀🧑‍💻",
    "template": "{{ 7*7 }} ${7*7} %s %n",
    "json-inside": '{"type": "error", "code": "token_expired"}',
    "zero-width": "\u200b",
}


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
async def test_frame_payload_is_stored_and_returned_byte_exact(pair, room, alice, payload):
    sender, listener = pair
    await sender.send_json_to({"message": payload, "client_id": "c-1"})
    acknowledged = await sender.receive_json_from()
    assert acknowledged == await listener.receive_json_from()
    assert acknowledged["message"] == payload
    [stored] = await _messages()
    assert stored.text == payload
    [listed] = await _history(room, alice)
    assert listed == acknowledged
    assert (await Message.objects.acount()) == 1, "DROP TABLE is just text"


async def test_frame_nul_character_is_stored_and_returned_byte_exact(pair, room, alice):
    """NUL inside a message, on SQLite and on PostgreSQL (whose text columns cannot hold NUL:
    chat.domain.fields.NulSafeTextField stores it escaped and gives it back as it was)."""
    sender, listener = pair
    payload = "antes\x00depois"
    await sender.send_json_to({"message": payload})
    reply = await sender.receive_json_from()
    assert reply["message"] == payload
    assert reply == await listener.receive_json_from()
    [stored] = await _messages()
    assert stored.text == payload
    [listed] = await _history(room, alice)
    assert listed["message"] == payload


@pytest.mark.parametrize(
    "text",
    [
        '{"message": "\\ud800"}',  # a lone surrogate: valid JSON, not encodable as UTF-8
        '{"message": "ok", "client_id": "\\udfff"}',
    ],
    ids=["message", "client_id"],
)
async def test_frame_lone_surrogate_is_refused_clearly(pair, text):
    sender, listener = pair
    await send_text(sender, text)
    await expect_frame_error(sender, "invalid_frame")
    await assert_still_open_and_nothing_stored(sender, listener)


async def expect_frame_error(communicator, code: str | None = None) -> dict:
    output = await communicator.receive_output(timeout=3)
    assert output["type"] == "websocket.send", output
    assert_no_leak(output["text"])
    frame = json.loads(output["text"])
    assert frame["type"] == "error", frame
    assert frame["code"] in FRAME_ERROR_CODES, frame
    if code is not None:
        assert frame["code"] == code, frame
    assert isinstance(frame["detail"], str) and frame["detail"]
    return frame


async def assert_still_open_and_nothing_stored(sender, listener) -> None:
    await sender.send_json_to({"type": "ping"})
    assert await sender.receive_json_from() == {"type": "pong"}, "an error frame never closes"
    await assert_silent(sender, listener)
    assert await stored_count() == 0


async def _messages() -> list[Message]:
    return [message async for message in Message.objects.order_by("id")]


async def _history(room, user) -> list[dict]:
    response = await AsyncClient().get(
        f"/api/chat/rooms/{room.pk}/messages/",
        headers={"Authorization": f"Bearer {factories.access_token(user)}"},
    )
    assert response.status_code == 200, response.content
    # Served as JSON that browsers may not sniff into HTML: the <script> payload stays data.
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    return response.json()["results"]


async def _room_of(*users):
    return await database_sync_to_async(make_room)(members=users, name="Outra")
