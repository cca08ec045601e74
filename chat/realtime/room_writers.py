"""The threads the WebSocket runs a room's domain operations on.

Where the database takes concurrent writers (PostgreSQL), each room's writes run on a thread
of their own, picked by the room's id out of CHAT_DB_WRITE_THREADS: one room stays on one
thread, while different rooms write in parallel instead of queueing behind each other on
Channels' single database thread. SQLite takes one writer at a time: Channels' thread.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection


@cache
def _write_thread(index: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"chat-room-writer-{index}")


def room_database(room_id: uuid.UUID) -> Callable:
    """database_sync_to_async for this room's writes: on the room's own thread, if any."""
    threads = settings.CHAT_DB_WRITE_THREADS
    if threads <= 0 or connection.vendor != "postgresql":
        return database_sync_to_async
    executor = _write_thread(room_id.int % threads)
    return lambda function: database_sync_to_async(
        function, thread_sensitive=False, executor=executor
    )
