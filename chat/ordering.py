"""Per-room ordering: a room's messages are stored and broadcast one at a time.

Holding one lock per room around "store, then broadcast" makes every member receive a room's
messages in id order, the order history returns them in. Within a process an asyncio lock
does it; across server processes on PostgreSQL a session advisory lock on the room does.
The advisory lock is only ever *tried* (never waited for inside the database thread), so two
processes holding different rooms can never deadlock each other's database threads.

Where the database takes concurrent writers (PostgreSQL), a room's writes run on a thread of
their own, picked by the room's id out of CHAT_DB_WRITE_THREADS: one room stays on one thread
(its advisory lock and unlock share one connection, a session), while different rooms write
in parallel instead of queueing behind each other on Channels' single database thread.
While a thread's connection holds a room's lock it is never recycled (CONN_MAX_AGE): that
would end the session and release the lock halfway through.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import cache

from asgiref.sync import SyncToAsync
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection

logger = logging.getLogger(__name__)

RETRY_SECONDS = 0.002
# Weak values: a room's lock lives only while a message of that room is in flight.
_local_locks: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _local_lock(room_id: uuid.UUID) -> asyncio.Lock:
    key = (asyncio.get_running_loop(), room_id)
    lock = _local_locks.get(key)
    if lock is None:
        lock = _local_locks[key] = asyncio.Lock()
    return lock


@cache
def _write_thread(index: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"chat-room-writer-{index}")


class _HeldLocks(threading.local):
    """Per thread: the rooms whose advisory lock this thread's connection holds right now."""

    def __init__(self) -> None:
        self.keys: set[int] = set()


_held = _HeldLocks()


def _held_keys() -> set[int]:
    return _held.keys


def holds_room_lock(room_id: uuid.UUID) -> bool:
    """True inside room_sequence's database calls on PostgreSQL: the room's writes are
    serialized already, across processes too (chat.services needs no row lock then)."""
    return _advisory_key(room_id) in _held_keys()


def _close_old_connections_unless_locked() -> None:
    # Recycling the connection (CONN_MAX_AGE) would end its session, and silently release
    # a room's advisory lock in the middle of "store, then broadcast".
    if not _held_keys():
        close_old_connections()


class RoomDatabaseSyncToAsync(SyncToAsync):
    """database_sync_to_async, but never recycling a connection that holds a room's lock."""

    def thread_handler(self, loop, *args, **kwargs):
        _close_old_connections_unless_locked()
        try:
            return super().thread_handler(loop, *args, **kwargs)
        finally:
            _close_old_connections_unless_locked()


def room_database(room_id: uuid.UUID) -> Callable:
    """database_sync_to_async for this room's writes: on the room's own thread, if any."""
    return _database_on(_room_executor(room_id))


def _database_on(executor: ThreadPoolExecutor | None) -> Callable:
    if executor is None:
        return RoomDatabaseSyncToAsync
    return lambda function: RoomDatabaseSyncToAsync(
        function, thread_sensitive=False, executor=executor
    )


def _room_executor(room_id: uuid.UUID) -> ThreadPoolExecutor | None:
    threads = settings.CHAT_DB_WRITE_THREADS
    if connection.vendor == "postgresql":
        # At least one thread of our own: a connection holding a room's lock must never be
        # recycled, and Channels' shared database thread recycles without asking us.
        threads = max(threads, 1)
    return _write_thread(room_id.int % threads) if threads > 0 else None


def _advisory_key(room_id: uuid.UUID) -> int:
    return int.from_bytes(room_id.bytes[:8], "big", signed=True)


_NOT_LOCKED = object()


def _call_holding_lock(key: int, function: Callable, args: tuple, kwargs: dict):
    """In the room's thread: take the room's lock unless held, then call; one thread hop."""
    if key not in _held_keys():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            if not cursor.fetchone()[0]:
                return _NOT_LOCKED  # held by another process
        _held_keys().add(key)
    return function(*args, **kwargs)


def _release_lock(key: int) -> None:
    """In the room's thread, after the sequence's last call: a no-op if it never locked."""
    if key not in _held_keys():
        return
    _held_keys().discard(key)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
    except DatabaseError:
        pass  # the session is gone, and its advisory locks with it


class _RoomLock:
    """The room's advisory lock, taken in the same thread call as the sequence's first write
    (one round trip to the thread, not two) and released by a job queued behind it."""

    def __init__(self, room_id: uuid.UUID) -> None:
        self.key = _advisory_key(room_id)
        self.executor = _room_executor(room_id)
        self.database = _database_on(self.executor)
        self.used = False

    def run(self, function: Callable) -> Callable:
        async def holding_lock(*args, **kwargs):
            self.used = True
            while True:
                result = await self.database(_call_holding_lock)(self.key, function, args, kwargs)
                if result is not _NOT_LOCKED:
                    return result
                await asyncio.sleep(RETRY_SECONDS)

        return holding_lock

    def release(self) -> None:
        if not self.used:
            return
        # The room's own thread runs jobs in order: this unlock runs before the room's next
        # write (or after a cancelled one still in flight), with no wait on the event loop.
        self.executor.submit(_release_lock, self.key).add_done_callback(_log_failed_release)


def _log_failed_release(done) -> None:
    if done.exception() is not None:
        logger.error("room lock release failed", exc_info=done.exception())


@asynccontextmanager
async def room_sequence(room_id: uuid.UUID) -> AsyncIterator[Callable]:
    """Run the body alone for this room: in this process, and on PostgreSQL across processes.

    Yields the function the body runs its database calls through (on the room's thread).
    """
    async with _local_lock(room_id):
        if connection.vendor != "postgresql":
            yield room_database(room_id)
            return
        lock = _RoomLock(room_id)
        try:
            yield lock.run
        finally:
            lock.release()
