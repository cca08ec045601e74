"""Writes: every change to rooms, memberships and messages goes through here."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction

from chat import events
from chat.models import Membership, Message, Room


@dataclass(frozen=True, slots=True)
class MessageCreateResult:
    message: Message
    created: bool  # False: a retry of an already stored client_id


def message_create(
    *, room: Room, author, text: str, client_id: str | None = None
) -> MessageCreateResult:
    """Store a message; a retry with the same client_id returns the stored one."""
    with transaction.atomic():
        # Lock the room row so a room's ids commit in id order: a reader paging with
        # `after=<id>` can then never miss a message that commits late (PostgreSQL; SQLite
        # serializes writers anyway).
        Room.objects.select_for_update().only("id").get(pk=room.pk)
        if client_id is not None:
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


def room_create(*, name: str, type: str, created_by) -> Room:
    """Create a room; its creator becomes its admin member."""
    with transaction.atomic():
        room = Room.objects.create(name=name, type=type, created_by=created_by)
        Membership.objects.create(room=room, user=created_by, role=Membership.Role.ADMIN)
    return room


def membership_add(
    *, room: Room, user, role: str = Membership.Role.MEMBER
) -> tuple[Membership, bool]:
    """Add `user` to `room`; returns (membership, created). Adding twice changes nothing."""
    return Membership.objects.get_or_create(room=room, user=user, defaults={"role": role})


def membership_remove(*, room: Room, user) -> bool:
    """Remove `user` from `room` and close its open sockets there; False if it was not a member."""
    deleted, _ = Membership.objects.filter(room=room, user=user).delete()
    if deleted:
        transaction.on_commit(lambda: events.notify_member_removed(room.pk, user.pk))
    return bool(deleted)
