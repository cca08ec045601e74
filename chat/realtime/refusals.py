"""The WebSocket's table of domain refusals: each becomes an error frame with the refusal's
code, and either leaves the socket open (a FrameError) or closes it (a Rejection, with its
close code). One row per chat.domain.refusals class; tests/test_refusals.py fails on a
missing one."""

from __future__ import annotations

from chat.domain import refusals
from chat.protocol import FrameError, Rejection

WEBSOCKET_REFUSALS: dict[type[refusals.Refusal], FrameError | Rejection] = {
    refusals.RoomNotFound: Rejection.ROOM_NOT_FOUND,
    refusals.NotAMember: Rejection.NOT_A_MEMBER,
    refusals.NotRoomAdmin: FrameError.NOT_ROOM_ADMIN,
    refusals.LastAdmin: FrameError.LAST_ADMIN,
    refusals.MessageNotFound: FrameError.MESSAGE_NOT_FOUND,
    refusals.NotAllowed: FrameError.NOT_ALLOWED,
    refusals.EditWindowExpired: FrameError.EDIT_WINDOW_EXPIRED,
    refusals.EmptyMessage: FrameError.EMPTY_MESSAGE,
    refusals.MessageTooLong: FrameError.MESSAGE_TOO_LONG,
    refusals.ReplyNotInRoom: FrameError.INVALID_FRAME,
    refusals.InvalidEmoji: FrameError.INVALID_EMOJI,
    refusals.TooManyReactions: FrameError.TOO_MANY_REACTIONS,
    refusals.FileTooLarge: FrameError.FILE_TOO_LARGE,
    refusals.FileTypeNotAllowed: FrameError.FILE_TYPE_NOT_ALLOWED,
    refusals.AttachmentNotUsable: FrameError.INVALID_FRAME,
    refusals.AttachmentNotFound: FrameError.ATTACHMENT_NOT_FOUND,
    refusals.UserNotFound: FrameError.USER_NOT_FOUND,
    refusals.RoomReadOnly: FrameError.ROOM_READ_ONLY,
    refusals.RecordNotFound: FrameError.RECORD_NOT_FOUND,
    refusals.InvalidRequest: FrameError.INVALID_REQUEST,
}


def websocket_refusal(refusal: refusals.Refusal) -> FrameError | Rejection:
    """The error code a refusal is sent as; a Rejection closes the socket."""
    return WEBSOCKET_REFUSALS[type(refusal)]
