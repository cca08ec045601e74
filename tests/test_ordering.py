"""chat.ordering: one room at a time, different rooms side by side."""

import asyncio
import threading
import time
import uuid

import pytest
from channels.db import database_sync_to_async
from django.db import DatabaseError, connection

from chat.models import Message
from chat.ordering import room_database, room_sequence
from chat.services import message_create
from tests.factories import make_room, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def _rooms_on_different_threads(threads: int) -> tuple[uuid.UUID, uuid.UUID]:
    first = uuid.uuid4()
    second = next(r for r in iter(uuid.uuid4, None) if r.int % threads != first.int % threads)
    return first, second


async def test_room_sequence_writes_two_rooms_at_once_each_on_its_own_thread(settings):
    """A write of room A that waits for room B's write finishes: they do not share a thread."""
    settings.CHAT_DB_WRITE_THREADS = 2
    room_a, room_b = _rooms_on_different_threads(2)
    b_wrote = threading.Event()
    threads_used = {room_a: set(), room_b: set()}

    def write_a() -> bool:
        threads_used[room_a].add(threading.current_thread().name)
        return b_wrote.wait(timeout=5)

    def write_b() -> None:
        threads_used[room_b].add(threading.current_thread().name)
        b_wrote.set()

    async def in_room(room_id, write):
        async with room_sequence(room_id) as run:
            return await run(write)()

    a_saw_b, _ = await asyncio.gather(in_room(room_a, write_a), in_room(room_b, write_b))
    assert a_saw_b, "room B's write ran while room A's was still in progress"
    for _ in range(3):
        await in_room(room_a, lambda: threads_used[room_a].add(threading.current_thread().name))
    assert len(threads_used[room_a]) == 1, "a room keeps its thread (and connection)"
    assert threads_used[room_a] != threads_used[room_b]


async def test_room_sequence_runs_one_write_of_a_room_at_a_time(settings):
    settings.CHAT_DB_WRITE_THREADS = 2
    room_id, inside, most_inside = uuid.uuid4(), 0, 0

    async def write_once():
        nonlocal inside, most_inside
        async with room_sequence(room_id) as run:
            inside += 1
            most_inside = max(most_inside, inside)
            await run(lambda: None)()
            await asyncio.sleep(0.001)
            inside -= 1

    await asyncio.gather(*(write_once() for _ in range(20)))
    assert most_inside == 1


def _expire_connection():
    """Make the thread's connection overdue for recycling (as CONN_MAX_AGE would); return it."""
    connection.ensure_connection()
    connection.close_at = time.monotonic() - 1
    return connection.connection  # held by the test, so its identity is never reused


def _connection_id():
    connection.ensure_connection()
    return connection.connection


async def test_room_sequence_never_recycles_the_connection_that_holds_the_room_lock(settings):
    """On PostgreSQL the room's advisory lock lives in the writer's session: recycling that
    connection mid-sequence would release the lock silently. (SQLite takes no such lock:
    there this runs the sequence only; ./scripts/test runs the suite on PostgreSQL too.)"""
    settings.CHAT_DB_WRITE_THREADS = 2
    room_id = uuid.uuid4()
    async with room_sequence(room_id) as run:
        overdue = await run(_expire_connection)()
        during = await run(_connection_id)()
    run = room_database(room_id)  # outside the sequence: no lock
    await run(_expire_connection)()
    after = await run(_connection_id)()
    if connection.vendor == "postgresql":
        assert during is overdue, "kept while the lock is held"
        assert after is not overdue, "recycled once the lock is released"



def _record_statements(statements: list):
    """An execute wrapper: (first two words of the SQL, inside a transaction?) per statement."""

    def record(execute, sql, params, many, context):
        statements.append((" ".join(sql.split()[:2]), connection.in_atomic_block))
        return execute(sql, params, many, context)

    return record


async def test_a_message_costs_one_lock_one_insert_and_one_unlock_outside_a_transaction(
    settings,
):
    """In the room's sequence the room's writes are serialized already: no BEGIN/COMMIT and no
    row lock around the INSERT; on PostgreSQL the advisory lock is tried in the same thread
    call as the write, and released by a job queued behind it."""
    settings.CHAT_DB_WRITE_THREADS = 2
    room = await database_sync_to_async(make_room)()
    author = await database_sync_to_async(make_user)()
    statements = []
    recorder = _record_statements(statements)
    on_room_thread = room_database(room.pk)
    await on_room_thread(lambda: connection.execute_wrappers.append(recorder))()

    async with room_sequence(room.pk) as run:
        result = await run(message_create)(room=room, author=author, text="hi")
    await on_room_thread(lambda: connection.execute_wrappers.remove(recorder))()  # after unlock

    assert result.created and await Message.objects.filter(pk=result.message.pk).aexists()
    insert = [("INSERT INTO", False)]
    if connection.vendor == "postgresql":
        lock = ("SELECT pg_try_advisory_lock(%s)", False)
        unlock = ("SELECT pg_advisory_unlock(%s)", False)
        assert statements == [lock, *insert, unlock]
    else:
        assert statements == insert


def _room_lock_free(key: int) -> bool | None:
    """Whether this thread's session could take the room's lock (None: SQLite has none)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        taken = cursor.fetchone()[0]
        if taken:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
    return taken


async def test_another_process_cannot_write_the_room_until_the_sequence_ends(settings):
    """On PostgreSQL the room's advisory lock is held from the first write to the end of the
    sequence (the broadcast), and free again once it ended, even if the write failed."""
    settings.CHAT_DB_WRITE_THREADS = 2
    room_id, other_room = _rooms_on_different_threads(2)
    key = int.from_bytes(room_id.bytes[:8], "big", signed=True)
    another_session = room_database(other_room)  # another thread: another connection

    def failing_write():
        raise DatabaseError("the write failed")

    free_during = []
    with pytest.raises(DatabaseError):
        async with room_sequence(room_id) as run:
            await run(lambda: None)()
            free_during.append(await another_session(_room_lock_free)(key))
            await run(failing_write)()
    await room_database(room_id)(lambda: None)()  # the queued unlock has run
    free_after = await another_session(_room_lock_free)(key)

    if connection.vendor == "postgresql":
        assert free_during == [False]
        assert free_after is True
    else:  # SQLite serializes writers itself: no lock to take
        assert free_during == [None] and free_after is None


async def test_with_no_writer_threads_postgresql_still_writes_on_a_thread_of_its_own(settings):
    """Channels' shared database thread recycles connections without asking: a room's lock
    held there could be dropped mid-sequence. So 0 means Channels' thread on SQLite only."""
    settings.CHAT_DB_WRITE_THREADS = 0
    async with room_sequence(uuid.uuid4()) as run:
        thread_name = await run(lambda: threading.current_thread().name)()
    if connection.vendor == "postgresql":
        assert thread_name.startswith("chat-room-writer-")
    else:
        assert not thread_name.startswith("chat-room-writer-")
