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
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import cache

from channels.db import DatabaseSyncToAsync, database_sync_to_async
from django.conf import settings
from django.db import DatabaseError, connection

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


def room_database(room_id: uuid.UUID) -> Callable:
    """database_sync_to_async for this room's writes: on the room's own thread, if any."""
    threads = settings.CHAT_DB_WRITE_THREADS
    if threads <= 0:
        return database_sync_to_async
    executor = _write_thread(room_id.int % threads)
    return lambda function: DatabaseSyncToAsync(
        function, thread_sensitive=False, executor=executor
    )


def _advisory_key(room_id: uuid.UUID) -> int:
    return int.from_bytes(room_id.bytes[:8], "big", signed=True)


def _try_advisory_lock(key: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        return cursor.fetchone()[0]


def _advisory_unlock(key: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


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
        while not await run(_try_advisory_lock)(key):  # noqa: ASYNC110 - held by another process
            await asyncio.sleep(RETRY_SECONDS)
        try:
            yield run
        finally:
            try:
                await run(_advisory_unlock)(key)
            except DatabaseError:
                pass  # the session is gone, and its advisory locks with it
