"""Reads: rooms and message history, always through the access rule in chat.domain.access."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import NamedTuple

from django.db import connections
from django.db.models import (
    Count,
    IntegerField,
    Max,
    OuterRef,
    Prefetch,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce

from chat.domain.access import accessible_rooms, in_key_scope, may_see_rooms
from chat.domain.models import (
    Membership,
    Message,
    Notification,
    Reaction,
    Room,
    RoomSequence,
)


def room_list_for_user(*, user) -> QuerySet[Room]:
    """The user's rooms, each with `member_count`, `unread_count` (others' messages after
    the user's read marker, tombstones excluded) and `mention_count` (those of them that
    mention the user)."""
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
    mentions = (
        Notification.objects.filter(
            room=OuterRef("pk"),
            user=user,
            kind=Notification.Kind.MENTION,
            message_id__gt=OuterRef("last_read"),
            message__deleted_at__isnull=True,
        )
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
        .annotate(mention_count=Coalesce(Subquery(mentions, output_field=IntegerField()), 0))
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
    author_is_bot: bool
    created_at: datetime
    client_id: str | None
    edited_at: datetime | None
    deleted_at: datetime | None
    reply_to_id: int | None
    reply_count: int
    last_reply_at: datetime | None
    change_seq: int
    mentions: list[int]
    attachments: list[dict]
    kind: str
    data: dict | None
    room_id: uuid.UUID

    @property
    def pk(self) -> int:
        return self.id


@dataclass(frozen=True, slots=True)
class ReactionSummary:
    """One emoji on one message: how many reacted with it, and who (to tell each their own)."""

    emoji: str
    count: int
    user_ids: frozenset[int]


@dataclass(frozen=True, slots=True)
class MessagePage:
    results: list[MessageRow]
    has_more: bool
    # Message id -> its reactions, for the messages of the page that have any.
    reactions: dict[int, list[ReactionSummary]] = field(default_factory=dict)


def reaction_summaries(*, message_ids: list[int]) -> dict[int, list[ReactionSummary]]:
    """The reactions of each message that has some, each emoji in the order it was first used."""
    by_message: dict[int, list[tuple[str, int]]] = {}
    rows = (
        Reaction.objects.filter(message_id__in=message_ids)
        .order_by("id")
        .values_list("message_id", "emoji", "user_id")
    )
    for message_id, emoji, user_id in rows:
        by_message.setdefault(message_id, []).append((emoji, user_id))
    return {message_id: summaries_of_rows(pairs) for message_id, pairs in by_message.items()}


def summaries_of_rows(rows: list[tuple[str, int]]) -> list[ReactionSummary]:
    """One message's reactions from its (emoji, user id) rows, oldest first."""
    users_of: dict[str, set[int]] = {}
    for emoji, user_id in rows:
        users_of.setdefault(emoji, set()).add(user_id)
    return [
        ReactionSummary(emoji, len(users), frozenset(users)) for emoji, users in users_of.items()
    ]


def reactions_of(messages) -> dict[int, list[ReactionSummary]]:
    """`reaction_summaries` of messages (models or MessageRows), asked only for those that
    changed: each reaction takes a change number, so messages never changed, most of them,
    cost no query."""
    changed = [message.id for message in messages if message.change_seq]
    return reaction_summaries(message_ids=changed) if changed else {}


def _with_reactions(rows: list[MessageRow], *, has_more: bool) -> MessagePage:
    return MessagePage(rows, has_more=has_more, reactions=reactions_of(rows))


def message_list(
    *,
    room: Room,
    before: int | None = None,
    after: int | None = None,
    limit: int = 50,
    thread: int | None = None,
) -> MessagePage:
    """A page of a room's history, oldest first, for a caller that has checked access.

    With `after`: the oldest `limit` messages newer than it (recovery after a reconnect);
    `has_more` says newer ones remain. Otherwise the newest `limit` messages older than
    `before` (or the latest); `has_more` says older ones remain. With `thread`: the same
    within the replies of that root.
    """
    return _page(None, room.pk, before, after, limit, thread)


def member_message_list(
    *,
    user,
    room_id: uuid.UUID,
    before: int | None = None,
    after: int | None = None,
    limit: int = 50,
    thread: int | None = None,
) -> MessagePage | None:
    """`message_list` of a room `user` may see, or None when it may not (or does not exist).

    The access rule (chat.domain.access.accessible_rooms: a member, signed in and active) is
    part of the page's own query, so a history request reads one page in one query; only an
    empty page asks again, through `accessible_rooms`, to tell an empty page of a member's room
    from a room that is not the user's.
    """
    if not may_see_rooms(user) or not in_key_scope(user, room_id):
        return None
    page = _page(user, room_id, before, after, limit, thread)
    if page.results or accessible_rooms(user).filter(pk=room_id).exists():
        return page
    return None


def _page(user, room_id, before, after, limit, thread=None) -> MessagePage:
    # Ids beyond the column's range: as a parameter SQLite refuses them.
    largest_id = _largest_message_id()
    if after is not None and after > largest_id:
        return MessagePage([], has_more=False)  # no message is newer
    if before is not None and before > largest_id:
        before = None  # every message is older
    if thread is not None and thread > largest_id:
        return MessagePage([], has_more=False)  # no such root
    rows = _page_rows(user, room_id, before, after, limit, thread)
    page = [MessageRow._make((*row, room_id)) for row in rows]
    if after is not None:
        return _with_reactions(page[:limit], has_more=len(page) > limit)
    return _with_reactions(page[:limit][::-1], has_more=len(page) > limit)


def _largest_message_id() -> int:
    connection = connections[Message.objects.db]
    return connection.ops.integer_field_range(Message._meta.pk.get_internal_type())[1]


def _page_rows(user, room_id, before, after, limit: int, thread: int | None) -> list[tuple]:
    """One page of the room's messages, one more than `limit` (does an older/newer one exist?),
    behind the access rule when `user` is given, converted as the ORM converts its columns.

    Written as the SQL it is: a page is read on every history request and every reconnect,
    and building the same query through the ORM cost ~1.5 ms of CPU per page on PostgreSQL,
    more than running it (docs/performance.md, issue 16).
    """
    connection = connections[Message.objects.db]
    room = Message._meta.get_field("room").get_db_prep_value(room_id, connection)
    sql, params = _page_sql(
        connection.vendor,
        room=room,
        member_id=None if user is None else user.pk,
        before=before,
        after=after,
        limit=limit,
        thread=thread,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return _converted(rows, connection)


def _page_sql(
    vendor: str, *, room, member_id, before, after, limit: int, thread: int | None = None
) -> tuple[str, list]:
    """The page's SQL and parameters, one statement per shape (which of member, before, after
    and thread are given).

    PostgreSQL gets the room as a one-value range and the order (room, id); SQLite, an
    equality and the order id. With `room = X`, PostgreSQL may treat the room as a constant
    and walk the primary key backwards for a latest page, through every newer message of other
    rooms: it did for a room holding most of the table, 18 ms in the database behind 200,000
    newer messages of another room (docs/performance.md). With the range, only the (room, id)
    index gives the order. SQLite's planner does the opposite: the range made its `after=`
    pages of a small room 15 times slower, and the equality already reads the (room, id) index.
    """
    tables = _page_tables()
    by_range = vendor == "postgresql"
    if by_range:
        where, params = ["m.room_id >= %s AND m.room_id <= %s"], [room, room]
    else:
        where, params = ["m.room_id = %s"], [room]
    if member_id is not None:
        # The access rule of chat.domain.access.accessible_rooms (membership; the user's own
        # part, signed in and active, is checked before). Uncorrelated, so PostgreSQL checks it
        # once, ahead of the range scan.
        where.append(
            f"EXISTS (SELECT 1 FROM {tables.memberships} WHERE room_id = %s AND user_id = %s)"
        )
        params += [room, member_id]
    if thread is not None:
        where.append("m.reply_to_id = %s")
        params.append(thread)
    if before is not None:
        where.append("m.id < %s")
        params.append(before)
    if after is not None:
        where.append("m.id > %s")
        params.append(after)
    direction = "ASC" if after is not None else "DESC"
    order = ["m.room_id", "m.id"] if by_range else ["m.id"]
    sql = (
        f"SELECT {tables.select} FROM {tables.messages} m"
        f" JOIN {tables.users} u ON u.{tables.user_pk} = m.author_id"
        f" WHERE {' AND '.join(where)}"
        f" ORDER BY {', '.join(f'{column} {direction}' for column in order)} LIMIT %s"
    )
    return sql, [*params, limit + 1]


# MessageRow's fields, in its order, as (table alias, field): "u" is the author.
_PAGE_FIELDS = (
    ("m", "id"),
    ("m", "text"),
    ("m", "author"),
    ("u", "username"),
    ("u", "is_bot"),
    ("m", "created_at"),
    ("m", "client_id"),
    ("m", "edited_at"),
    ("m", "deleted_at"),
    ("m", "reply_to"),
    ("m", "reply_count"),
    ("m", "last_reply_at"),
    ("m", "change_seq"),
    ("m", "mentions"),
    ("m", "attachments"),
    ("m", "kind"),
    ("m", "data"),
)


@functools.cache
def _page_tables() -> SimpleNamespace:
    """Table and column names of the page's SQL, from the models (read once the models are)."""
    user_model = Message._meta.get_field("author").related_model
    models = {"m": Message, "u": user_model}
    columns = [models[alias]._meta.get_field(name).get_col(alias) for alias, name in _PAGE_FIELDS]
    return SimpleNamespace(
        messages=Message._meta.db_table,
        memberships=Membership._meta.db_table,
        users=user_model._meta.db_table,
        user_pk=user_model._meta.pk.column,
        columns=columns,
        select=", ".join(f"{column.alias}.{column.target.column}" for column in columns),
    )


def _converted(rows: list[tuple], connection) -> list[tuple]:
    """`rows` with each value passed through its column's converters, the ORM's own: the
    backend's (SQLite's datetimes made aware) and the field's (NulSafeTextField's NUL)."""
    converters = [
        (index, converter, column)
        for index, column in enumerate(_page_tables().columns)
        for converter in (
            connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        )
    ]
    if not converters:
        return rows
    converted = []
    for row in rows:
        values = list(row)
        for index, converter, column in converters:
            values[index] = converter(values[index], column, connection)
        converted.append(values)
    return converted


_CHANGE_COLUMNS = (
    "id",
    "text",
    "author_id",
    "author__username",
    "author__is_bot",
    "created_at",
    "client_id",
    "edited_at",
    "deleted_at",
    "reply_to_id",
    "reply_count",
    "last_reply_at",
    "change_seq",
    "mentions",
    "attachments",
    "kind",
    "data",
)


def member_change_list(
    *, user, room_id: uuid.UUID, after: int, limit: int = 50
) -> MessagePage | None:
    """The messages of a room `user` may see that changed after change number `after` (edited,
    deleted, reacted to, replied to), each once, as it is now, in change order; None when the
    room is not the user's. `has_more`: more changed after the page's last."""
    if not accessible_rooms(user).filter(pk=room_id).exists():
        return None
    rows = (
        Message.objects.filter(room_id=room_id, change_seq__gt=after)
        .order_by("change_seq")
        .values_list(*_CHANGE_COLUMNS)[: limit + 1]
    )
    page = [MessageRow._make((*row, room_id)) for row in rows]
    return _with_reactions(page[:limit], has_more=len(page) > limit)


def room_change_seq(*, room_id: uuid.UUID) -> int:
    """The room's last change number (0: no change yet)."""
    found = RoomSequence.objects.filter(room_id=room_id).values_list("change_seq", flat=True)
    return next(iter(found), 0)


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
