"""What the chat's rules refuse, as typed exceptions: no transport's status or close code here.

Each refusal has a stable `code`, the same string on every transport. What a refusal becomes on
the wire is decided at each edge by one table: chat.api.errors (HTTP status) and
chat.realtime.refusals (WebSocket error frame, and whether the socket closes). A
refusal missing from either table fails tests/test_refusals.py.
"""

from __future__ import annotations


class Refusal(Exception):
    """A request the chat's rules refuse; `detail` says why, for people."""

    code: str = "refused"
    default_detail: str = "refused"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.default_detail
        super().__init__(self.detail)


class RoomNotFound(Refusal):
    code = "room_not_found"
    default_detail = "no such room"


class NotAMember(Refusal):
    code = "not_a_member"
    default_detail = "you are not a member of this room; ask a room admin to add you"


class NotRoomAdmin(Refusal):
    code = "not_room_admin"
    default_detail = "only room admins can do this"


class LastAdmin(Refusal):
    code = "last_admin"
    default_detail = (
        "this member is the room's only admin, and a room must keep one to be managed; "
        "ask an administrator to make another member admin first"
    )


class MessageNotFound(Refusal):
    code = "message_not_found"
    default_detail = "no such message in this room"


class NotAllowed(Refusal):
    """The user may not do this: change another's message, change a direct room's members."""

    code = "not_allowed"
    default_detail = "you may not do this"


class EditWindowExpired(Refusal):
    code = "edit_window_expired"
    default_detail = "this message can no longer be edited"


class EmptyMessage(Refusal):
    code = "empty_message"
    default_detail = "message is empty"


class MessageTooLong(Refusal):
    code = "message_too_long"
    default_detail = "message is too long"


class ReplyNotInRoom(Refusal):
    """`reply_to` names no message of this room: the frame (or body) is wrong, not the rules."""

    code = "invalid_frame"
    default_detail = "'reply_to' must be the id of a message of this room"


class InvalidEmoji(Refusal):
    code = "invalid_emoji"
    default_detail = "a reaction is one emoji (a single emoji of Unicode's emoji set)"


class TooManyReactions(Refusal):
    code = "too_many_reactions"
    default_detail = "this message has as many different emoji as it may; react with one of them"


class FileTooLarge(Refusal):
    code = "file_too_large"
    default_detail = "this file is larger than the server accepts"


class FileTypeNotAllowed(Refusal):
    code = "file_type_not_allowed"
    default_detail = "programs cannot be shared in the chat, whatever their name"


class AttachmentNotUsable(Refusal):
    """`attachments` names an upload that is not the author's, of another room, or sent."""

    code = "invalid_frame"
    default_detail = "'attachments' must be ids of your own uploads to this room, not yet sent"


class AttachmentNotFound(Refusal):
    code = "attachment_not_found"
    default_detail = "no such file"


class RoomReadOnly(Refusal):
    code = "room_read_only"
    default_detail = "this room is closed to new messages (its record is closed); history stays"


class RecordNotFound(Refusal):
    code = "record_not_found"
    default_detail = "no such record, or not one you may see"


class UserNotFound(Refusal):
    code = "user_not_found"
    default_detail = "no such active user"


class InvalidRequest(Refusal):
    """A request that cannot mean anything (a direct room with oneself, a blank name)."""

    code = "invalid_request"
    default_detail = "invalid request"


def all_refusals() -> list[type[Refusal]]:
    """Every refusal class, for the edges' tables and their completeness test."""
    found, pending = [], [Refusal]
    while pending:
        for subclass in pending.pop().__subclasses__():
            found.append(subclass)
            pending.append(subclass)
    return found
