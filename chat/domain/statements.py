"""The statements of the frequent small changes (reactions, read markers, change numbers),
written as the SQL they are.

Built through the ORM, each of these cost 0.2-1.1 ms of CPU to compile (a locked message
lookup 1.1 ms, the change counter's UPDATE + SELECT 0.5 ms) against ~0.03 ms to run on
SQLite: a reaction cost three messages (docs/performance.md, item 30). Names of tables and
columns come from the models, so a renamed field cannot drift from the SQL. Each function is
one statement (or two, where noted) on the default database, inside the caller's transaction.
"""

from __future__ import annotations

import uuid

from django.db import connection
from django.utils import timezone

from chat.domain.models import Membership, Message, Reaction, Room, RoomSequence


def _execute(sql: str, params: list, answer=lambda cursor: None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return answer(cursor)


def _one(cursor):
    return cursor.fetchone()


def _rowcount(cursor) -> int:
    return cursor.rowcount


def _storable_id(message_id: int) -> bool:
    """Whether `message_id` fits the id column: a client may send any integer, and outside
    the column's range SQLite's driver raises (the ORM answers "no rows" for it)."""
    low, high = connection.ops.integer_field_range(Message._meta.pk.get_internal_type())
    return (low is None or message_id >= low) and (high is None or message_id <= high)


def _room_key(room_id: uuid.UUID):
    """The room's id as its column stores it (SQLite: 32 hex digits; PostgreSQL: uuid)."""
    return Room._meta.pk.get_db_prep_value(room_id, connection)


def message_lock(*, room_id: uuid.UUID, message_id: int) -> bool:
    """The room's message `message_id`, not deleted, exists; on PostgreSQL its row is locked
    until the transaction ends (SQLite's write lock already covers the transaction)."""
    if not _storable_id(message_id):
        return False
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    row = _execute(
        f"SELECT 1 FROM {Message._meta.db_table} WHERE id = %s AND room_id = %s"
        f" AND deleted_at IS NULL{lock}",
        [message_id, _room_key(room_id)],
        _one,
    )
    return row is not None


def reaction_rows(*, message_id: int) -> list[tuple[str, int]]:
    """(emoji, user id) of every reaction to the message, oldest first."""
    return _execute(
        f"SELECT emoji, user_id FROM {Reaction._meta.db_table} WHERE message_id = %s ORDER BY id",
        [message_id],
        lambda cursor: [tuple(row) for row in cursor.fetchall()],
    )


def reaction_insert(*, message_id: int, user_id: int, emoji: str) -> None:
    created_at = Reaction._meta.get_field("created_at").get_db_prep_value(
        timezone.now(), connection
    )
    _execute(
        f"INSERT INTO {Reaction._meta.db_table} (message_id, user_id, emoji, created_at)"
        " VALUES (%s, %s, %s, %s)",
        [message_id, user_id, emoji, created_at],
    )


def reaction_delete(*, message_id: int, user_id: int, emoji: str) -> None:
    _execute(
        f"DELETE FROM {Reaction._meta.db_table}"
        " WHERE message_id = %s AND user_id = %s AND emoji = %s",
        [message_id, user_id, emoji],
    )


def change_seq_take(*, room_id: uuid.UUID) -> int:
    """The room's next change number (RoomSequence): one UPDATE ... RETURNING, or, for the
    room's first change, an INSERT."""
    table, key = RoomSequence._meta.db_table, _room_key(room_id)
    row = _execute(
        f"UPDATE {table} SET change_seq = change_seq + 1 WHERE room_id = %s RETURNING change_seq",
        [key],
        _one,
    )
    if row is not None:
        return row[0]
    _execute(f"INSERT INTO {table} (room_id, change_seq) VALUES (%s, 1)", [key])
    return 1


def change_seqs_take(*, room_id: uuid.UUID, count: int) -> int:
    """`count` consecutive change numbers of the room at once (for a batch of changed
    messages, each its own); returns the first."""
    table, key = RoomSequence._meta.db_table, _room_key(room_id)
    row = _execute(
        f"UPDATE {table} SET change_seq = change_seq + %s WHERE room_id = %s RETURNING change_seq",
        [count, key],
        _one,
    )
    if row is not None:
        return row[0] - count + 1
    _execute(f"INSERT INTO {table} (room_id, change_seq) VALUES (%s, %s)", [key, count])
    return 1


def message_change_seq_set(*, message_id: int, change_seq: int) -> None:
    _execute(
        f"UPDATE {Message._meta.db_table} SET change_seq = %s WHERE id = %s",
        [change_seq, message_id],
    )


def read_marker_move(*, room_id: uuid.UUID, user_id: int, message_id: int) -> bool:
    """Move the member's marker forward to `message_id`, a message of the room: True if it
    moved (False: not a member, not forward, or no such message)."""
    if not _storable_id(message_id):
        return False
    key = _room_key(room_id)
    moved = _execute(
        f"UPDATE {Membership._meta.db_table} SET last_read_message_id = %s"
        " WHERE room_id = %s AND user_id = %s AND last_read_message_id < %s"
        f" AND EXISTS (SELECT 1 FROM {Message._meta.db_table} WHERE id = %s AND room_id = %s)",
        [message_id, key, user_id, message_id, message_id, key],
        _rowcount,
    )
    return moved > 0


def room_seen_by(*, room_id: uuid.UUID) -> bool:
    """The room's `seen_by` setting as stored now (a socket's Room may be older)."""
    row = _execute(
        f"SELECT seen_by FROM {Room._meta.db_table} WHERE id = %s", [_room_key(room_id)], _one
    )
    return bool(row and row[0])
