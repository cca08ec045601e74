"""Writes: every change to rooms, memberships and messages goes through here."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from chat import events
from chat.access import accessible_rooms, can_delete_message, can_edit_message
from chat.models import Membership, Message, MessageRevision, Room
from chat.ordering import holds_room_lock


class ChatActionRefused(Exception):
    """A request the rules refuse; `code` is the protocol's error code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class MessageCreateResult:
    message: Message
    created: bool  # False: a retry of an already stored client_id


def message_create(
    *, room: Room, author, text: str, client_id: str | None = None
) -> MessageCreateResult:
    """Store a message; a retry with the same client_id returns the stored one."""
    serialized = _room_writes_serialized(room)
    if serialized and client_id is None:
        # One INSERT is atomic by itself: no transaction, no row lock (two round trips fewer).
        message = Message.objects.create(room=room, author=author, text=text)
        return MessageCreateResult(message, created=True)
    with transaction.atomic():
        if not serialized:
            # Lock the room row so a room's ids commit in id order: a reader paging with
            # `after=<id>` can then never miss a message that commits late.
            Room.objects.select_for_update().only("id").get(pk=room.pk)
        if client_id is None:
            message = Message.objects.create(room=room, author=author, text=text)
            return MessageCreateResult(message, created=True)
        existing = (
            Message.objects.select_related("author")
            .filter(room=room, author=author, client_id=client_id)
            .first()
        )
        if existing is not None:
            return MessageCreateResult(existing, created=False)
        try:
            with transaction.atomic():
                message = Message.objects.create(
                    room=room, author=author, text=text, client_id=client_id
                )
        except IntegrityError:
            existing = Message.objects.select_related("author").get(
                room=room, author=author, client_id=client_id
            )
            return MessageCreateResult(existing, created=False)
    return MessageCreateResult(message, created=True)


def _room_writes_serialized(room: Room) -> bool:
    """True when nothing else can store a message in this room while we do: SQLite takes
    one writer at a time, and on PostgreSQL chat.ordering's room lock may be held already."""
    return connection.vendor == "sqlite" or holds_room_lock(room.pk)


def room_create(*, name: str, type: str = Room.Type.GROUP, created_by) -> Room:
    """Create a room; its creator becomes its admin member."""
    if type == Room.Type.DIRECT:
        raise ChatActionRefused("not_allowed", DIRECT_ROOMS_ONLY_FROM_DIRECT)
    with transaction.atomic():
        room = Room.objects.create(name=name, type=type, created_by=created_by)
        Membership.objects.create(room=room, user=created_by, role=Membership.Role.ADMIN)
    return room


DIRECT_ROOMS_ONLY_FROM_DIRECT = (
    "direct rooms are opened with POST /api/chat/direct/ {user_id}; create a group instead"
)
DIRECT_MEMBERS_ARE_FIXED = "a direct room's two members never change; create a group instead"
LAST_ADMIN = (
    "this member is the room's only admin, and a room must keep one to be managed; "
    "ask an administrator to make another member admin first"
)


def membership_add(
    *, room: Room, user, role: str = Membership.Role.MEMBER
) -> tuple[Membership, bool]:
    """Add `user` to `room`; returns (membership, created). Adding twice changes nothing.

    A direct room keeps the two members it was created with: adding to one is refused."""
    if room.type == Room.Type.DIRECT:
        raise ChatActionRefused("not_allowed", DIRECT_MEMBERS_ARE_FIXED)
    return Membership.objects.get_or_create(room=room, user=user, defaults={"role": role})


def membership_remove(*, room: Room, user) -> bool:
    """Remove `user` from `room` and close its open sockets there; False if it was not a member.

    Refused for a direct room's members, and for a room's last admin (nobody could manage
    the room after them)."""
    if room.type == Room.Type.DIRECT:
        raise ChatActionRefused("not_allowed", DIRECT_MEMBERS_ARE_FIXED)
    with transaction.atomic():
        # The admins' rows stay locked until the delete commits: two admins removing each
        # other at once cannot both pass the check and leave the room with none.
        admins = set(
            Membership.objects.select_for_update()
            .filter(room=room, role=Membership.Role.ADMIN)
            .values_list("user_id", flat=True)
        )
        if admins == {user.pk}:
            raise ChatActionRefused("not_allowed", LAST_ADMIN)
        deleted, _ = Membership.objects.filter(room=room, user=user).delete()
    if deleted:
        transaction.on_commit(lambda: events.notify_member_removed(room.pk, user.pk))
    return bool(deleted)


def _message_for_change(*, room: Room, message_id: int) -> Message:
    message = (
        Message.objects.select_for_update()
        .select_related("author", "room")
        .filter(room=room, pk=message_id, deleted_at__isnull=True)
        .first()
    )
    if message is None:
        raise ChatActionRefused("message_not_found", "no such message in this room")
    return message


def message_edit(*, room: Room, message_id: int, editor, text: str) -> Message:
    """Replace a message's text (its author, within the edit window); the old text is audited."""
    now = timezone.now()
    with transaction.atomic():
        message = _message_for_change(room=room, message_id=message_id)
        if message.author_id != editor.pk:
            raise ChatActionRefused("not_allowed", "only the author can edit a message")
        if not can_edit_message(editor, message, now=now):
            raise ChatActionRefused("edit_window_expired", "this message can no longer be edited")
        MessageRevision.objects.create(
            message=message,
            actor=editor,
            action=MessageRevision.Action.EDIT,
            previous_text=message.text,
        )
        message.text, message.edited_at = text, now
        message.save(update_fields=["text", "edited_at"])
    return message


def message_delete(*, room: Room, message_id: int, actor) -> Message:
    """Turn a message into a tombstone (its author or a room admin); the text is audited."""
    with transaction.atomic():
        message = _message_for_change(room=room, message_id=message_id)
        if not can_delete_message(actor, message):
            raise ChatActionRefused(
                "not_allowed", "only the author or a room admin can delete a message"
            )
        MessageRevision.objects.create(
            message=message,
            actor=actor,
            action=MessageRevision.Action.DELETE,
            previous_text=message.text,
        )
        message.text, message.deleted_at = "", timezone.now()
        message.save(update_fields=["text", "deleted_at"])
    return message


def read_marker_set(*, room: Room, user, message_id: int) -> int:
    """Move the user's read marker forward to `message_id`; returns the marker now stored."""
    if not Message.objects.filter(room=room, pk=message_id).exists():
        raise ChatActionRefused("message_not_found", "no such message in this room")
    with transaction.atomic():
        membership = Membership.objects.select_for_update().get(room=room, user=user)
        if message_id > membership.last_read_message_id:
            membership.last_read_message_id = message_id
            membership.save(update_fields=["last_read_message_id"])
    return membership.last_read_message_id


def direct_room_get_or_create(*, user, other) -> tuple[Room, bool]:
    """The one direct room of this pair of users, created on first use."""
    if user.pk == other.pk:
        raise ChatActionRefused("invalid_frame", "a direct room needs another user")
    low, high = sorted([user, other], key=lambda person: person.pk)
    key = f"{low.pk}:{high.pk}"
    existing = accessible_rooms(user).filter(direct_key=key).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            room = Room.objects.create(
                name=f"{low.username} & {high.username}",
                type=Room.Type.DIRECT,
                created_by=user,
                direct_key=key,
            )
            Membership.objects.bulk_create(
                [Membership(room=room, user=low), Membership(room=room, user=high)]
            )
    except IntegrityError:  # the other user created it at the same moment
        return Room.objects.get(direct_key=key), False
    return room, True
