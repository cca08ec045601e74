"""Who may see a room: the ONE membership rule, used by the WebSocket and the REST API alike."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet

from chat.models import Message, Room
from chat.protocol import Rejection


def accessible_rooms(user) -> QuerySet[Room]:
    """Rooms whose messages and members `user` may see: those it is a member of."""
    if not (user and user.is_authenticated and user.is_active):
        return Room.objects.none()
    return Room.objects.filter(memberships__user=user)


def can_user_access(user, room: Room) -> bool:
    """True when `user` may read and write in `room`."""
    return accessible_rooms(user).filter(pk=room.pk).exists()


def room_for_connection(*, user, room_id: str) -> tuple[Room | None, Rejection | None]:
    """The room a socket asks for, or the reason it may not have it (room first, then access).

    One query when access is granted (every handshake); telling "no such room" from "not a
    member" costs a second one, only on refusal.
    """
    try:
        room_pk = uuid.UUID(room_id)
    except ValueError:
        return None, Rejection.ROOM_NOT_FOUND
    try:
        return accessible_rooms(user).get(pk=room_pk), None
    except Room.DoesNotExist:
        pass
    if Room.objects.filter(pk=room_pk).exists():
        return None, Rejection.NOT_A_MEMBER
    return None, Rejection.ROOM_NOT_FOUND


def is_room_admin(user, room: Room) -> bool:
    """Room admins manage membership."""
    return (
        accessible_rooms(user)
        .filter(pk=room.pk, memberships__user=user, memberships__role="admin")
        .exists()
    )


def can_edit_message(user, message: Message, *, now: datetime) -> bool:
    """Authors edit their own messages, within CHAT_EDIT_WINDOW_SECONDS of sending."""
    window = timedelta(seconds=settings.CHAT_EDIT_WINDOW_SECONDS)
    return message.author_id == user.pk and now - message.created_at <= window


def can_delete_message(user, message: Message) -> bool:
    """Authors delete their own messages; room admins delete any message of their room."""
    return message.author_id == user.pk or is_room_admin(user, message.room)
