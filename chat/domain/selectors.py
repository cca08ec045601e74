"""Reads: rooms and message history, always through the access rule in chat.domain.access."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from django.db import connections
from django.db.models import (
    Count,
    Exists,
    IntegerField,
    Max,
    OuterRef,
    Prefetch,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce

from chat.domain.access import accessible_rooms, may_see_rooms
from chat.domain.models import Membership, Message, Room


def room_list_for_user(*, user) -> QuerySet[Room]:
    """The user's rooms, each with `member_count` and `unread_count` (others' messages after
    the user's read marker, tombstones excluded)."""
    if not getattr(user, "is_authenticated", False):
        return Room.objects.none()
    member_count = (
        Membership.objects.filter(room=OuterRef("pk"))
        .order_by()
        .values("room")
        .annotate(n=Count("pk"))
        .values("n")
    )
    last_read = Membership.objects.filter(room=OuterRef("pk"), user=user).values(
        "last_read_message_id"
    )[:1]
    unread = (
        Message.objects.filter(
            room=OuterRef("pk"), id__gt=OuterRef("last_read"), deleted_at__isnull=True
        )
        .exclude(author=user)
        .order_by()
        .values("room")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        accessible_rooms(user)
        .annotate(member_count=Subquery(member_count, output_field=IntegerField()))
        .annotate(last_read=Subquery(last_read))
        .annotate(unread_count=Coalesce(Subquery(unread, output_field=IntegerField()), 0))
        .order_by("name", "id")
    )


class MessageRow(NamedTuple):
    """A stored message as history reads it: the columns its payload needs, read as a tuple.

    A page is read on every reconnect and history request; building 50-200 model instances
    (and their authors) for it cost more than the query itself. `room_id` is not read: every
    row of a page belongs to the room asked for.
    """

    id: int
    text: str
    author_id: int
    author_username: str
    created_at: datetime
    client_id: str | None
    edited_at: datetime | None
    deleted_at: datetime | None
    room_id: uuid.UUID

    @property
    def pk(self) -> int:
        return self.id


_MESSAGE_ROW_COLUMNS = (
    "id",
    "text",
    "author_id",
    "author__username",
    "created_at",
    "client_id",
    "edited_at",
    "deleted_at",
)


@dataclass(frozen=True, slots=True)
class MessagePage:
    results: list[MessageRow]
    has_more: bool


def message_list(
    *, room: Room, before: int | None = None, after: int | None = None, limit: int = 50
) -> MessagePage:
    """A page of a room's history, oldest first, for a caller that has checked access.

    With `after`: the oldest `limit` messages newer than it (recovery after a reconnect);
    `has_more` says newer ones remain. Otherwise the newest `limit` messages older than
    `before` (or the latest); `has_more` says older ones remain.
    """
    return _page(None, room.pk, before, after, limit)


def member_message_list(
    *,
    user,
    room_id: uuid.UUID,
    before: int | None = None,
    after: int | None = None,
    limit: int = 50,
) -> MessagePage | None:
    """`message_list` of a room `user` may see, or None when it may not (or does not exist).

    The access rule (chat.domain.access.accessible_rooms) is part of the page's own query, so a
    history request reads one page in one query; only an empty page asks again, to tell an
    empty page of a member's room from a room that is not the user's.
    """
    if not may_see_rooms(user):
        return None
    page = _page(user, room_id, before, after, limit)
    if page.results or accessible_rooms(user).filter(pk=room_id).exists():
        return page
    return None


def _room_as_range() -> bool:
    """PostgreSQL gets the room as a one-value range; SQLite, as an equality.

    With `room = X`, PostgreSQL may treat the room as a constant and walk the primary key
    backwards for a latest page, through every newer message of other rooms: it did for a
    room holding most of the table, 18 ms in the database behind 200,000 newer messages of
    another room (docs/performance.md). With `room >= X AND room <= X`, ordered by (room, id),
    only the (room, id) index gives the order. SQLite's planner does the opposite: the range
    made its `after=` pages of a small room 15 times slower, and the equality already reads
    the (room, id) index there.
    """
    return connections[Message.objects.db].vendor == "postgresql"


def _page(user, room_id, before, after, limit) -> MessagePage:
    # Ids beyond the column's range: as a parameter SQLite refuses them.
    largest_id = _largest_message_id()
    if after is not None and after > largest_id:
        return MessagePage([], has_more=False)  # no message is newer
    if before is not None and before > largest_id:
        before = None  # every message is older
    rows = _page_query(user, room_id, before, after, limit)
    page = [MessageRow._make((*row, room_id)) for row in rows]
    if after is not None:
        return MessagePage(page[:limit], has_more=len(page) > limit)
    return MessagePage(page[:limit][::-1], has_more=len(page) > limit)


def _largest_message_id() -> int:
    connection = connections[Message.objects.db]
    return connection.ops.integer_field_range(Message._meta.pk.get_internal_type())[1]


def _page_query(user, room_id, before, after, limit: int) -> QuerySet:
    """One page of the room's messages, one more than `limit` (does an older/newer one exist?),
    behind the access rule when `user` is given."""
    messages = _room_messages(room_id)
    if user is not None:
        visible = accessible_rooms(user).filter(pk=room_id)
        if _room_as_range():
            # Uncorrelated, so PostgreSQL checks access once, ahead of the range scan; a join
            # with the user's rooms would bring back the equality on the room, for each room.
            messages = messages.filter(Exists(visible))
        else:
            messages = messages.filter(room__in=visible)
    if before is not None:
        messages = messages.filter(id__lt=before)
    # Within one room, (room, id) is the order of id; with the range it is the index's order.
    order = ("room_id", "id") if _room_as_range() else ("id",)
    if after is not None:
        messages = messages.filter(id__gt=after).order_by(*order)
    else:
        messages = messages.order_by(*(f"-{field}" for field in order))
    return messages[: limit + 1].values_list(*_MESSAGE_ROW_COLUMNS)


def _room_messages(room_id) -> QuerySet[Message]:
    if _room_as_range():
        return Message.objects.filter(room_id__gte=room_id, room_id__lte=room_id)
    return Message.objects.filter(room_id=room_id)


def room_detail(*, user, room_id) -> Room:
    """One of the user's rooms with its members loaded."""
    return (
        room_list_for_user(user=user)
        .prefetch_related(
            Prefetch(
                "memberships",
                queryset=Membership.objects.select_related("user").order_by("user__username"),
            )
        )
        .get(pk=room_id)
    )


def last_messages(*, rooms: list[Room]) -> dict:
    """The newest message of each room, in two queries whatever the number of rooms."""
    latest_ids = (
        Message.objects.filter(room__in=rooms)
        .values("room")
        .annotate(last_id=Max("id"))
        .values_list("last_id", flat=True)
    )
    messages = Message.objects.filter(id__in=list(latest_ids)).select_related("author")
    return {message.room_id: message for message in messages}
