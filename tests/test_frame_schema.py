"""chat/frames.schema.json is the frames' one schema, shared with the clients (clients/js
generates its types from it): every frame chat.protocol builds must fit it, and it must name
exactly the frame types the server sends and accepts."""

import inspect
import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from uuid import UUID

import jsonschema
import pytest

from chat import protocol

SCHEMA = json.loads((Path(protocol.__file__).parent / "frames.schema.json").read_text())
ROOM = UUID("ad36ed7e-0000-4000-8000-000000000001")
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def validator(definition: str) -> jsonschema.Draft7Validator:
    schema = {**SCHEMA, "$ref": f"#/definitions/{definition}"}
    schema.pop("properties")
    return jsonschema.Draft7Validator(schema)


SERVER = validator("ServerFrame")
CLIENT = validator("ClientFrame")


def message(**changes) -> SimpleNamespace:
    """What message_payload reads of a Message (or a selectors.MessageRow)."""
    fields = {
        "id": 1234,
        "room_id": ROOM,
        "text": "Olá, equipe",
        "author_id": 1,
        "author_username": "admin",
        "author_is_bot": False,
        "created_at": NOW,
        "client_id": "c-42",
        "edited_at": None,
        "deleted_at": None,
        "reply_to_id": None,
        "reply_count": 0,
        "last_reply_at": None,
        "change_seq": 0,
        "mentions": [],
        "attachments": [],
        "kind": "user",
        "data": None,
    }
    return SimpleNamespace(**(fields | changes))


EDITED = message(edited_at=NOW, change_seq=58, reply_count=2, last_reply_at=NOW, mentions=[7])
DELETED = message(deleted_at=NOW, text="", change_seq=59)
SYSTEM = message(kind="system", data={"stage": "proposal"}, author_is_bot=True, client_id=None)
ATTACHED = message(
    attachments=[
        {
            "id": 3,
            "name": "a.png",
            "content_type": "image/png",
            "size": 10,
            "url": "/api/chat/attachments/3/",
            "thumbnail_url": None,
        }
    ]
)
REACTIONS = [SimpleNamespace(emoji="👍", count=2, user_ids={1, 7})]
PAYLOAD = protocol.message_payload(ATTACHED, reactions=REACTIONS, viewer_id=1)
USER = protocol.user_payload(7, "maria")
BOT = protocol.user_payload(9, "robo", is_bot=True)
NOTIFICATION = SimpleNamespace(
    id=88,
    kind="mention",
    room_id=ROOM,
    room=SimpleNamespace(name="Chat - Gerência"),
    message=EDITED,
    created_at=NOW,
    read_at=None,
)
ROOM_INFO = {"id": str(ROOM), "name": "Chat - Gerência", "type": "community", "change_seq": 57}

# Every frame builder of chat.protocol, with the arguments that make each of its shapes.
BUILDER_CALLS = {
    "error_frame": [
        {"code": "message_too_long", "detail": "too long", "client_id": "c-42"},
        {"code": "removed_from_room", "detail": "removed", "close_code": 4403},
        {"code": "invalid_json", "detail": "frame is not valid JSON"},
    ],
    "pong_frame": [{}],
    "connection_established_frame": [
        {"room": ROOM_INFO, "user": USER},
        {"room": ROOM_INFO, "user": BOT},
        # the public test room (chat/realtime/consumers/public.py)
        {
            "room": {"id": "teste", "name": "teste", "type": "public"},
            "user": protocol.user_payload(None, "anônimo"),
        },
    ],
    "history_frame": [
        {"messages": [PAYLOAD, protocol.message_payload(DELETED)], "has_more": True},
        {"messages": [], "has_more": False},
    ],
    "changes_frame": [{"messages": [protocol.message_payload(SYSTEM)], "has_more": False}],
    "message_updated_frame": [{"message": EDITED}, {"message": SYSTEM}],
    "reactions_frame": [
        {
            "room_id": ROOM,
            "message_id": 1234,
            "change_seq": 60,
            "reactions": REACTIONS,
            "viewer_id": viewer,
        }
        for viewer in (1, None)
    ],
    "notification_frame": [{"notification": NOTIFICATION}],
    "message_deleted_frame": [{"message": DELETED}],
    "presence_frame": [
        {"room_id": ROOM, "user": USER, "online": True},
        {"room_id": ROOM, "user": BOT, "online": False},
    ],
    "typing_frame": [{"room_id": ROOM, "user": USER, "is_typing": flag} for flag in (True, False)],
    "read_frame": [{"room_id": ROOM, "user": USER, "message_id": 1234}],
    "member_added_frame": [{"room_id": ROOM, "user": USER, "role": "member"}],
    "member_removed_frame": [{"room_id": ROOM, "user_id": 9}],
    "room_updated_frame": [
        {"room_id": ROOM, "name": "Vendas – Sul", "seen_by": True},
        {"room_id": ROOM, "name": "Vendas", "seen_by": False, "read_only": True},
    ],
}


def builders() -> set[str]:
    return {
        name
        for name, function in inspect.getmembers(protocol, inspect.isfunction)
        if name.endswith("_frame")
        and not name.startswith("parse_")
        and function.__module__ == protocol.__name__
    }


def built_frames() -> list[dict]:
    frames = [
        json.loads(getattr(protocol, name)(**kwargs))
        for name, calls in BUILDER_CALLS.items()
        for kwargs in calls
    ]
    # chat.message frames are message_payload itself (stored, then broadcast as is)
    frames.append(PAYLOAD)
    frames.append(protocol.message_payload(SYSTEM))
    # ...and the public room's echo (chat/realtime/consumers/public.py), nothing stored
    frames.append(
        {
            "type": protocol.CHAT_MESSAGE,
            "id": None,
            "room": "teste",
            "message": "oi",
            "user": protocol.user_payload(None, "anônimo"),
            "created_at": protocol.timestamp(NOW),
            "client_id": None,
        }
    )
    return frames


def schema_types(union: str) -> set[str]:
    types = set()
    for option in SCHEMA["definitions"][union]["oneOf"]:
        definition = SCHEMA["definitions"][option["$ref"].rsplit("/", 1)[1]]
        types.add(definition["properties"]["type"]["const"])
    return types


def test_every_frame_builder_has_sample_calls():
    """A builder added to chat.protocol fails here until it is given calls (and a schema)."""
    assert builders() == set(BUILDER_CALLS)


@pytest.mark.parametrize("frame", built_frames(), ids=lambda frame: frame["type"])
def test_every_built_frame_fits_the_schema(frame):
    errors = [error.message for error in SERVER.iter_errors(frame)]
    assert not errors, errors


def test_the_schema_has_exactly_the_frame_types_the_server_sends():
    assert schema_types("ServerFrame") == {frame["type"] for frame in built_frames()}


def test_the_schema_has_exactly_the_frame_types_the_server_accepts():
    assert schema_types("ClientFrame") == protocol.CLIENT_TYPES


CLIENT_EXAMPLES = [
    {"type": "chat.message", "message": "Olá, equipe", "client_id": "c-42"},
    {"message": "Olá"},
    {"type": "chat.message", "message": "Concordo", "reply_to": 1234, "attachments": [3]},
    {"type": "ping"},
    {"type": "chat.sync", "after": 1230},
    {"type": "chat.sync_changes", "after": 57, "client_id": "s-1"},
    {"type": "typing", "is_typing": True},
    {"type": "read", "message_id": 1234},
    {"type": "chat.edit", "message_id": 1234, "message": "Olá, equipe!"},
    {"type": "chat.delete", "message_id": 1234},
    {"type": "reaction.add", "message_id": 1234, "emoji": "👍"},
    {"type": "reaction.remove", "message_id": 1234, "emoji": "👍"},
]


@pytest.mark.parametrize("frame", CLIENT_EXAMPLES, ids=lambda frame: frame.get("type", "bare"))
def test_client_frames_the_schema_allows_the_server_parses(frame):
    assert not [error.message for error in CLIENT.iter_errors(frame)]
    parsed = protocol.parse_client_frame(json.dumps(frame), max_message_length=4000)
    assert parsed.type == frame.get("type", protocol.CHAT_MESSAGE)


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "chat.sync", "after": -1},
        {"type": "read"},
        {"type": "chat.message", "message": "x", "client_id": ""},
        {"type": "shout", "message": "x"},
    ],
)
def test_client_frames_the_schema_refuses_the_server_refuses(frame):
    assert list(CLIENT.iter_errors(frame))
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_client_frame(json.dumps(frame), max_message_length=4000)
