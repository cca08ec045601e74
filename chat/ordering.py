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


# Per thread: does this thread's connection hold a room's advisory lock right now?
_holding = threading.local()


def _close_old_connections_unless_locked() -> None:
    # Recycling the connection (CONN_MAX_AGE) would end its session, and silently release
    # the room's advisory lock in the middle of "store, then broadcast".
    if not getattr(_holding, "advisory_lock", False):
        close_old_connections()


class RoomDatabaseSyncToAsync(SyncToAsync):
    """database_sync_to_async, but never recycling a connection that holds the room's lock."""

    def thread_handler(self, loop, *args, **kwargs):
        _close_old_connections_unless_locked()
        try:
            return super().thread_handler(loop, *args, **kwargs)
        finally:
            _close_old_connections_unless_locked()


def room_database(room_id: uuid.UUID) -> Callable:
    """database_sync_to_async for this room's writes: on the room's own thread, if any."""
    threads = settings.CHAT_DB_WRITE_THREADS
    if threads <= 0:
        return RoomDatabaseSyncToAsync
    executor = _write_thread(room_id.int % threads)
    return lambda function: RoomDatabaseSyncToAsync(
        function, thread_sensitive=False, executor=executor
    )


def _advisory_key(room_id: uuid.UUID) -> int:
    return int.from_bytes(room_id.bytes[:8], "big", signed=True)


def _try_advisory_lock(key: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        locked = cursor.fetchone()[0]
    _holding.advisory_lock = locked
    return locked


def _advisory_unlock(key: int) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
    finally:
        _holding.advisory_lock = False


async def _acquire_advisory_lock(run: Callable, key: int) -> None:
    """Try until this process holds the room's lock; never leave it taken if cancelled."""
    while True:
        attempt = asyncio.ensure_future(run(_try_advisory_lock)(key))
        try:
            if await asyncio.shield(attempt):
                return
        except asyncio.CancelledError:
            attempt.add_done_callback(lambda done: _release_if_taken(done, run, key))
            raise
        await asyncio.sleep(RETRY_SECONDS)  # held by another process


_unlocks_in_flight: set[asyncio.Task] = set()


def _release_if_taken(attempt: asyncio.Future, run: Callable, key: int) -> None:
    if not attempt.cancelled() and attempt.exception() is None and attempt.result():
        unlock = asyncio.ensure_future(run(_advisory_unlock)(key))
        _unlocks_in_flight.add(unlock)
        unlock.add_done_callback(_unlocks_in_flight.discard)


@asynccontextmanager
async def room_sequence(room_id: uuid.UUID) -> AsyncIterator[Callable]:
    """Run the body alone for this room: in this process, and on PostgreSQL across processes.

    Yields room_database(room_id): the body runs its database calls through it.
    """
    run = room_database(room_id)
    async with _local_lock(room_id):
        if connection.vendor != "postgresql":
            yield run
            return
        key = _advisory_key(room_id)
        await _acquire_advisory_lock(run, key)
        try:
            yield run
        finally:
            try:
                await run(_advisory_unlock)(key)
            except DatabaseError:
                pass  # the session is gone, and its advisory locks with it
