"""A room's order: its changes are stored, committed and announced one at a time.

`room_order(room_id)` is what every domain operation that changes a room runs inside. While it
is held, nothing else can change the room: on PostgreSQL the room's advisory lock (across
threads and processes), on SQLite a lock of this process. The operation's transaction commits,
and its events are announced (chat.domain.events, on commit), before the order is released. So
every member receives a room's changes in commit order, ids commit in increasing order
(`after=<id>` never skips a message that commits late), and the last update a member sees is
the one the database holds.

Inside a transaction the caller opened (the Django admin opens one per page), the order lasts
until that transaction ends, and its events go out when it commits, just after: stored and
announced still, but not ordered against a change that commits in between. Call operations
outside a transaction where the order of announcements matters.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, OperationalError, connection

logger = logging.getLogger(__name__)

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


class RoomBusy(OperationalError):
    """The room's order was not free within CHAT_ROOM_ORDER_TIMEOUT_SECONDS: nothing was
    stored (a database error to every caller: `not_persisted` on a socket, 503 over REST)."""


@contextmanager
def room_order(room_id: uuid.UUID) -> Iterator[None]:
    """Hold the room's order: no other change of the room, in any process, meanwhile.

    On PostgreSQL the order is the room's advisory lock alone: every thread has its own
    session, and every wait is one PostgreSQL sees, so its deadlock detector can break a
    cycle with a row lock. On SQLite (one process) it is a lock of this process, taken only
    outside a caller's transaction: inside one, SQLite's own write lock already orders writers,
    and waiting for ours while holding it could stall a writer that holds ours.
    """
    if connection.vendor == "postgresql":
        with _advisory_lock(advisory_key(room_id)):
            yield
    elif connection.in_atomic_block:
        yield
    else:
        with _room_lock(room_id):
            yield


@contextmanager
def _advisory_lock(key: int) -> Iterator[None]:
    if connection.in_atomic_block:
        # The caller's transaction: the lock lasts until it commits or rolls back.
        _take("pg_try_advisory_xact_lock", key)
        yield
        return
    _take("pg_try_advisory_lock", key)
    try:
        yield
    finally:
        _release(key)


def _take(try_lock: str, key: int) -> None:
    """Try the lock until it is ours, for at most CHAT_ROOM_ORDER_TIMEOUT_SECONDS: a
    PostgreSQL lock wait has no deadline, and a stalled holder would stall every writer."""
    deadline = time.monotonic() + settings.CHAT_ROOM_ORDER_TIMEOUT_SECONDS
    pause = 0.001
    with connection.cursor() as cursor:
        while True:
            cursor.execute(f"SELECT {try_lock}(%s)", [key])
            if cursor.fetchone()[0]:
                return
            if time.monotonic() >= deadline:
                raise RoomBusy("the room is busy; nothing was stored, try again")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)


def _release(key: int) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
    except DatabaseError:
        # The change committed and was announced; a session that is gone took its lock along.
        logger.warning("room lock release failed", exc_info=True)
