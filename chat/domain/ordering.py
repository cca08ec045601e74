"""A room's order: its changes are stored, committed and announced one at a time.

`room_order(room_id)` is what every domain operation that changes a room runs inside. While it
is held, nothing else can change the room: in this process a lock, across processes on
PostgreSQL the room's advisory lock. The operation's transaction commits, and its events are
announced (chat.domain.events, on commit), before the order is released. So every member receives a
room's changes in commit order, ids commit in increasing order (`after=<id>` never skips a
message that commits late), and the last update a member sees is the one the database holds.

Inside a transaction the caller opened, the operation's events go out when that transaction
commits, after `room_order` was left: stored and announced still, but across processes the
order of two such announcements is not guaranteed. Call operations outside a transaction.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

_locks_guard = threading.Lock()
# Weak values: a room's lock lives only while a change of that room is in flight.
_room_locks: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _room_lock(room_id: uuid.UUID) -> threading.Lock:
    with _locks_guard:
        lock = _room_locks.get(room_id)
        if lock is None:
            lock = _room_locks[room_id] = threading.Lock()
        return lock


def advisory_key(room_id: uuid.UUID) -> int:
    """The room's PostgreSQL advisory lock key: 64 bits of its UUID."""
    return int.from_bytes(room_id.bytes[:8], "big", signed=True)


@contextmanager
def room_order(room_id: uuid.UUID) -> Iterator[None]:
    """Hold the room's order: no other change of the room, in any process, meanwhile."""
    with _room_lock(room_id):
        if connection.vendor != "postgresql":
            yield  # SQLite: one process, and this process's lock is the order
            return
        if connection.in_atomic_block:
            # The caller's transaction: the lock must last until it commits.
            _execute("SELECT pg_advisory_xact_lock(%s)", advisory_key(room_id))
            yield
            return
        _execute("SELECT pg_advisory_lock(%s)", advisory_key(room_id))
        try:
            yield
        finally:
            _execute("SELECT pg_advisory_unlock(%s)", advisory_key(room_id))


def _execute(sql: str, key: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, [key])
