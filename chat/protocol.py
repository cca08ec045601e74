"""The wire contract in code: close codes, error codes, frame parsing and frame builders.

docs/protocol.md is the prose version of this module; keep them in step.
"""

from __future__ import annotations

import contextlib
import json
import unicodedata
from dataclasses import dataclass
from datetime import UTC
from enum import IntEnum, StrEnum
from typing import Any

from chat import json_input


class CloseCode(IntEnum):
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    NOT_FOUND = 4404
    TOO_MANY_REQUESTS = 4429


class Rejection(StrEnum):
    """Error codes that end the connection, each with its close code and default detail."""

    AUTHENTICATION_REQUIRED = "authentication_required"
    TOKEN_INVALID = "token_invalid"
    TOKEN_EXPIRED = "token_expired"
    USER_INACTIVE = "user_inactive"
    API_KEY_REVOKED = "api_key_revoked"
    NOT_A_MEMBER = "not_a_member"
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    REMOVED_FROM_ROOM = "removed_from_room"
    ROOM_NOT_FOUND = "room_not_found"
    RATE_LIMITED = "rate_limited"
    FRAME_TOO_BIG = "frame_too_big"
    BINARY_NOT_SUPPORTED = "binary_not_supported"
    SERVICE_UNAVAILABLE = "service_unavailable"
    INTERNAL_ERROR = "internal_error"

    @property
    def close_code(self) -> CloseCode:
        return _REJECTION_CLOSE_CODES[self]

    @property
    def default_detail(self) -> str:
        return _REJECTION_DETAILS[self]


_REJECTION_CLOSE_CODES = {
    Rejection.AUTHENTICATION_REQUIRED: CloseCode.UNAUTHORIZED,
    Rejection.TOKEN_INVALID: CloseCode.UNAUTHORIZED,
    Rejection.TOKEN_EXPIRED: CloseCode.UNAUTHORIZED,
    Rejection.USER_INACTIVE: CloseCode.UNAUTHORIZED,
    Rejection.API_KEY_REVOKED: CloseCode.UNAUTHORIZED,
    Rejection.NOT_A_MEMBER: CloseCode.FORBIDDEN,
    Rejection.ORIGIN_NOT_ALLOWED: CloseCode.FORBIDDEN,
    Rejection.REMOVED_FROM_ROOM: CloseCode.FORBIDDEN,
    Rejection.ROOM_NOT_FOUND: CloseCode.NOT_FOUND,
    Rejection.RATE_LIMITED: CloseCode.TOO_MANY_REQUESTS,
    Rejection.FRAME_TOO_BIG: CloseCode.MESSAGE_TOO_BIG,
    Rejection.BINARY_NOT_SUPPORTED: CloseCode.UNSUPPORTED_DATA,
    Rejection.SERVICE_UNAVAILABLE: CloseCode.TRY_AGAIN_LATER,
    Rejection.INTERNAL_ERROR: CloseCode.INTERNAL_ERROR,
}

_REJECTION_DETAILS = {
    Rejection.AUTHENTICATION_REQUIRED: "no access token; connect with ?token=<access token> "
    "or an 'Authorization: Bearer' header (get one from POST /api/auth/token/)",
    Rejection.TOKEN_INVALID: "access token is not valid; log in again to get a new one",
    Rejection.TOKEN_EXPIRED: "access token expired; refresh it and reconnect",
    Rejection.USER_INACTIVE: "this user account is inactive",
    Rejection.API_KEY_REVOKED: "this API key was revoked; ask for a new one",
    Rejection.NOT_A_MEMBER: "you are not a member of this room; ask a room admin to add you",
    Rejection.ORIGIN_NOT_ALLOWED: "this page's origin may not open chat connections; "
    "add it to CHAT_ALLOWED_ORIGINS",
    Rejection.REMOVED_FROM_ROOM: "you were removed from this room",
    Rejection.ROOM_NOT_FOUND: "no such room",
    Rejection.RATE_LIMITED: "too many messages; connection closed, slow down and reconnect",
    Rejection.FRAME_TOO_BIG: "frame is larger than the server accepts",
    Rejection.BINARY_NOT_SUPPORTED: "binary frames are not supported; send JSON text frames",
    Rejection.SERVICE_UNAVAILABLE: "a backing service is unavailable; retry later",
    Rejection.INTERNAL_ERROR: "unexpected server error",
}


class FrameError(StrEnum):
    """Error codes answered with an error frame; the socket stays open."""

    INVALID_JSON = "invalid_json"
    INVALID_FRAME = "invalid_frame"
    UNKNOWN_TYPE = "unknown_type"
    EMPTY_MESSAGE = "empty_message"
    MESSAGE_TOO_LONG = "message_too_long"
    RATE_LIMITED = "rate_limited"
    NOT_PERSISTED = "not_persisted"
    MESSAGE_NOT_FOUND = "message_not_found"
    NOT_ALLOWED = "not_allowed"
    EDIT_WINDOW_EXPIRED = "edit_window_expired"
    NOT_ROOM_ADMIN = "not_room_admin"
    LAST_ADMIN = "last_admin"
    USER_NOT_FOUND = "user_not_found"
    INVALID_REQUEST = "invalid_request"
    INVALID_EMOJI = "invalid_emoji"
    TOO_MANY_REACTIONS = "too_many_reactions"
    # Of REST's uploads and downloads; in the table for one vocabulary (no frame makes them).
    FILE_TOO_LARGE = "file_too_large"
    FILE_TYPE_NOT_ALLOWED = "file_type_not_allowed"
    ATTACHMENT_NOT_FOUND = "attachment_not_found"
    ROOM_READ_ONLY = "room_read_only"
    RECORD_NOT_FOUND = "record_not_found"  # of REST's record rooms, as above


class ProtocolError(Exception):
    """A client frame the server refuses; carries the error code and a readable detail."""

    def __init__(self, code: FrameError, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.client_id: str | None = None  # the refused frame's, when it had a valid one


MAX_CLIENT_ID_LENGTH = 64
CHAT_MESSAGE = "chat.message"
PING = "ping"
CHAT_SYNC = "chat.sync"
CHAT_EDIT = "chat.edit"
CHAT_DELETE = "chat.delete"
TYPING = "typing"
READ = "read"
REACTION_ADD = "reaction.add"
REACTION_REMOVE = "reaction.remove"
CHAT_SYNC_CHANGES = "chat.sync_changes"
CLIENT_TYPES = frozenset(
    {
        CHAT_MESSAGE,
        PING,
        CHAT_SYNC,
        CHAT_SYNC_CHANGES,
        CHAT_EDIT,
        CHAT_DELETE,
        TYPING,
        READ,
        REACTION_ADD,
        REACTION_REMOVE,
    }
)


@dataclass(frozen=True, slots=True)
class ClientFrame:
    type: str
    message: str = ""
    client_id: str | None = None
    username: str | None = None
    after: int | None = None
    message_id: int | None = None
    is_typing: bool = False
    reply_to: int | None = None
    emoji: str = ""
    attachments: tuple[int, ...] = ()


def parse_client_frame(text: str, *, max_message_length: int) -> ClientFrame:
    """Turn a text frame into a ClientFrame, or raise ProtocolError saying what is wrong (with
    the frame's `client_id`, when it has a valid one, for the error frame to carry)."""
    data = _frame_object(text)
    try:
        return _frame_of(data, max_message_length)
    except ProtocolError as error:
        with contextlib.suppress(ProtocolError):
            error.client_id = _client_id(data)
        raise


def _frame_object(text: str) -> dict[str, Any]:
    try:
        data = json_input.loads(text)
    except json_input.JSONTooDeep as error:  # valid JSON, a shape no frame has
        raise ProtocolError(FrameError.INVALID_FRAME, f"frame is {error.detail}") from None
    except json_input.JSONInputError:
        raise ProtocolError(FrameError.INVALID_JSON, "frame is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError(FrameError.INVALID_FRAME, "frame must be a JSON object")
    return data


def _frame_of(data: dict[str, Any], max_message_length: int) -> ClientFrame:
    frame_type = data.get("type")
    if frame_type is None:
        if "message" not in data:
            raise ProtocolError(FrameError.INVALID_FRAME, "frame needs a 'type' or a 'message'")
        frame_type = CHAT_MESSAGE
    if not isinstance(frame_type, str) or frame_type not in CLIENT_TYPES:
        raise ProtocolError(
            FrameError.UNKNOWN_TYPE,
            f"unknown frame type; expected one of: {', '.join(sorted(CLIENT_TYPES))}",
        )
    # Any frame may carry a client_id: errors answering it carry it back.
    client_id = _client_id(data)
    if frame_type == PING:
        return ClientFrame(type=PING, client_id=client_id)
    if frame_type in (CHAT_SYNC, CHAT_SYNC_CHANGES):
        return ClientFrame(type=frame_type, after=_sync_cursor(data), client_id=client_id)
    if frame_type == TYPING:
        return ClientFrame(type=TYPING, is_typing=_is_typing(data), client_id=client_id)
    if frame_type in (READ, CHAT_DELETE):
        return ClientFrame(type=frame_type, message_id=_message_id(data), client_id=client_id)
    if frame_type in (REACTION_ADD, REACTION_REMOVE):
        return ClientFrame(
            type=frame_type, message_id=_message_id(data), emoji=_emoji(data), client_id=client_id
        )
    if frame_type == CHAT_EDIT:
        return ClientFrame(
            type=CHAT_EDIT,
            message_id=_message_id(data),
            message=_message_text(data, max_message_length),
            client_id=client_id,
        )
    return ClientFrame(
        type=CHAT_MESSAGE,
        message=_message_text(data, max_message_length),
        client_id=client_id,
        username=_display_name(data),
        reply_to=_reply_to(data),
        attachments=_attachment_ids(data),
    )


def _encodable(value: str, field: str) -> str:
    """JSON escapes can smuggle lone surrogates ("\ud800"), which no UTF-8 peer can receive."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError(
            FrameError.INVALID_FRAME, f"'{field}' is not valid Unicode (a lone surrogate)"
        ) from None
    return value


def _message_text(data: dict[str, Any], max_length: int) -> str:
    return valid_message_text(data.get("message"), max_length=max_length)


def valid_message_text(message: object, *, max_length: int) -> str:
    """The ONE rule for message text, on the socket and over REST: a non-empty string of at
    most `max_length` characters that UTF-8 can carry. Control characters, NUL included,
    are data (chat.domain.fields.NulSafeTextField stores NUL on PostgreSQL too)."""
    if not isinstance(message, str):
        raise ProtocolError(FrameError.INVALID_FRAME, "'message' must be a string")
    _encodable(message, "message")
    if not message.strip():
        raise ProtocolError(FrameError.EMPTY_MESSAGE, "message is empty")
    if len(message) > max_length:
        raise ProtocolError(
            FrameError.MESSAGE_TOO_LONG, f"message is longer than {max_length} characters"
        )
    return message


def _client_id(data: dict[str, Any]) -> str | None:
    return valid_client_id(data.get("client_id"))


def valid_client_id(client_id: object) -> str | None:
    """The ONE rule for a client_id, for every transport that takes one: absent, or 1 to 64
    characters that UTF-8 can carry, none of them a control character (PostgreSQL cannot
    store NUL in the column, and an id is not text to show: C0, DEL and C1 are refused)."""
    if client_id is None:
        return None
    if not isinstance(client_id, str) or not 0 < len(client_id) <= MAX_CLIENT_ID_LENGTH:
        raise ProtocolError(
            FrameError.INVALID_FRAME,
            f"'client_id' must be a string of 1 to {MAX_CLIENT_ID_LENGTH} characters",
        )
    _encodable(client_id, "client_id")
    if not client_id.isprintable() and any(
        unicodedata.category(character) == "Cc" for character in client_id
    ):
        raise ProtocolError(
            FrameError.INVALID_FRAME, "'client_id' may not contain control characters"
        )
    return client_id


def _sync_cursor(data: dict[str, Any]) -> int:
    after = data.get("after", 0)
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise ProtocolError(
            FrameError.INVALID_FRAME, "'after' must be a message id (an integer >= 0)"
        )
    return after


def _message_id(data: dict[str, Any]) -> int:
    message_id = data.get("message_id")
    if isinstance(message_id, bool) or not isinstance(message_id, int) or message_id < 1:
        raise ProtocolError(FrameError.INVALID_FRAME, "'message_id' must be a message id")
    return message_id


def _reply_to(data: dict[str, Any]) -> int | None:
    reply_to = data.get("reply_to")
    if reply_to is None:
        return None
    if isinstance(reply_to, bool) or not isinstance(reply_to, int) or not 0 < reply_to < 2**63:
        raise ProtocolError(FrameError.INVALID_FRAME, "'reply_to' must be a message id")
    return reply_to


MAX_ATTACHMENTS = 10  # per message (settings.CHAT_MAX_ATTACHMENTS_PER_MESSAGE's default)


def _attachment_ids(data: dict[str, Any]) -> tuple[int, ...]:
    ids = data.get("attachments", [])
    if (
        not isinstance(ids, list)
        or len(ids) > MAX_ATTACHMENTS
        or not all(isinstance(i, int) and not isinstance(i, bool) and 0 < i < 2**63 for i in ids)
    ):
        raise ProtocolError(
            FrameError.INVALID_FRAME,
            f"'attachments' must be a list of at most {MAX_ATTACHMENTS} upload ids",
        )
    return tuple(ids)


def _emoji(data: dict[str, Any]) -> str:
    """A string (which emoji it may be is the domain's rule: chat.domain.services.emoji_check)."""
    emoji = data.get("emoji")
    if not isinstance(emoji, str):
        raise ProtocolError(FrameError.INVALID_FRAME, "'emoji' must be a string")
    return _encodable(emoji, "emoji")


def _is_typing(data: dict[str, Any]) -> bool:
    is_typing = data.get("is_typing", True)
    if not isinstance(is_typing, bool):
        raise ProtocolError(FrameError.INVALID_FRAME, "'is_typing' must be true or false")
    return is_typing


def _display_name(data: dict[str, Any]) -> str | None:
    username = data.get("username")
    if isinstance(username, str) and username.strip():
        return _encodable(username.strip()[:50], "username")
    return None


def dumps(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def error_frame(
    code: str, detail: str, *, client_id: str | None = None, close_code: int | None = None
) -> str:
    """An error: `closing` says whether the server closes the socket now (with `close_code`);
    `client_id` is the answered frame's, when it had one."""
    frame: dict[str, Any] = {"type": "error", "code": str(code), "detail": detail}
    if client_id is not None:
        frame["client_id"] = client_id
    frame["closing"] = close_code is not None
    if close_code is not None:
        frame["close_code"] = int(close_code)
    return dumps(frame)


def pong_frame() -> str:
    return dumps({"type": "pong"})


def connection_established_frame(*, room: dict[str, Any], user: dict[str, Any]) -> str:
    return dumps({"type": "connection.established", "room": room, "user": user})


def history_frame(messages: list[dict[str, Any]], *, has_more: bool) -> str:
    return dumps({"type": "chat.history", "messages": messages, "has_more": has_more})


def user_payload(user_id: int | None, username: str, is_bot: bool = False) -> dict[str, Any]:
    """Who did something. `is_bot` only for service accounts: people's payloads (nearly every
    frame) stay exactly as they were, and a client reads a missing `is_bot` as false."""
    if is_bot:
        return {"id": user_id, "username": username, "is_bot": True}
    return {"id": user_id, "username": username}


def timestamp(moment) -> str:
    """UTC ISO 8601 with microseconds and a Z, e.g. 2026-11-25T12:00:00.123456Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def message_payload(
    message, *, type: str = CHAT_MESSAGE, reactions=(), viewer_id: int | None = None
) -> dict[str, Any]:
    """The fields of a stored message, as both the socket and the history API send them.

    `message`: a Message, or a chat.domain.selectors.MessageRow (history pages); `reactions`:
    its chat.domain.selectors.ReactionSummary list, each told as `me` for `viewer_id`.

    A deleted message is a tombstone: `deleted` true and an empty `message`.
    """
    return {
        "type": type,
        "id": message.id,
        "room": str(message.room_id),
        "message": message.text,
        "user": user_payload(message.author_id, message.author_username, message.author_is_bot),
        "created_at": timestamp(message.created_at),
        "client_id": message.client_id,
        "edited_at": timestamp(message.edited_at) if message.edited_at else None,
        "deleted": message.deleted_at is not None,
        "reply_to": message.reply_to_id,
        "reply_count": message.reply_count,
        "last_reply_at": timestamp(message.last_reply_at) if message.last_reply_at else None,
        "change_seq": message.change_seq,
        "mentions": message.mentions,
        "attachments": message.attachments,
        "reactions": reactions_payload(reactions, viewer_id=viewer_id),
        "kind": message.kind,
        "data": message.data,
    }


def message_updated_frame(message) -> str:
    """`chat.message.updated`: every field of the message but `reactions`, which only
    `chat.message.reactions` changes (it tells each receiver whether it reacted)."""
    payload = message_payload(message, type="chat.message.updated")
    del payload["reactions"]
    return dumps(payload)


def reactions_payload(reactions, *, viewer_id: int | None) -> list[dict[str, Any]]:
    return [
        {"emoji": reaction.emoji, "count": reaction.count, "me": viewer_id in reaction.user_ids}
        for reaction in reactions
    ]


def reactions_frame(
    *, room_id, message_id: int, change_seq: int, reactions, viewer_id: int | None
) -> str:
    return dumps(
        {
            "type": "chat.message.reactions",
            "room": str(room_id),
            "id": message_id,
            "reactions": reactions_payload(reactions, viewer_id=viewer_id),
            "change_seq": change_seq,
        }
    )


def page_payloads(page, *, viewer_id: int | None) -> list[dict[str, Any]]:
    """The messages of a chat.domain.selectors.MessagePage, with their reactions for `viewer_id`."""
    return [
        message_payload(row, reactions=page.reactions.get(row.id, ()), viewer_id=viewer_id)
        for row in page.results
    ]


def notification_payload(notification) -> dict[str, Any]:
    """A chat.domain.models.Notification with its message (and room) loaded."""
    return {
        "id": notification.id,
        "kind": notification.kind,
        "room": {"id": str(notification.room_id), "name": notification.room.name},
        "message": message_payload(notification.message),
        "created_at": timestamp(notification.created_at),
        "read": notification.read_at is not None,
    }


def notification_frame(notification) -> str:
    return dumps({"type": "notification", "notification": notification_payload(notification)})


def changes_frame(messages: list[dict[str, Any]], *, has_more: bool) -> str:
    return dumps({"type": "chat.changes", "messages": messages, "has_more": has_more})


def message_deleted_frame(message) -> str:
    return dumps(
        {
            "type": "chat.message.deleted",
            "id": message.id,
            "room": str(message.room_id),
            "deleted_at": timestamp(message.deleted_at),
            "change_seq": message.change_seq,
        }
    )


def presence_frame(*, room_id, user: dict[str, Any], online: bool) -> str:
    return dumps(
        {
            "type": "presence",
            "room": str(room_id),
            "user": user,
            "status": "online" if online else "offline",
        }
    )


def typing_frame(*, room_id, user: dict[str, Any], is_typing: bool) -> str:
    return dumps({"type": "typing", "room": str(room_id), "user": user, "is_typing": is_typing})


def read_frame(*, room_id, user: dict[str, Any], message_id: int) -> str:
    return dumps({"type": "read", "room": str(room_id), "user": user, "message_id": message_id})


def member_added_frame(*, room_id, user: dict[str, Any], role: str) -> str:
    return dumps({"type": "member.added", "room": str(room_id), "user": user, "role": role})


def member_removed_frame(*, room_id, user_id: int) -> str:
    return dumps({"type": "member.removed", "room": str(room_id), "user": {"id": user_id}})


def room_updated_frame(*, room_id, name: str, seen_by: bool, read_only: bool = False) -> str:
    room = {"id": str(room_id), "name": name, "seen_by": seen_by, "read_only": read_only}
    return dumps({"type": "room.updated", "room": room})
