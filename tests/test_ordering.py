"""chat.domain.ordering: a room's changes one at a time, each announced before the next."""

import asyncio
import threading
import uuid

import pytest
from django.db import DatabaseError, connection, connections, transaction

from chat.domain import events, services
from chat.domain.models import Message
from chat.domain.ordering import RoomBusy, advisory_key, room_order
from chat.domain.services import message_create
from chat.realtime.room_writers import room_database
from tests.factories import make_room, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def _rooms_on_different_threads(threads: int) -> tuple[uuid.UUID, uuid.UUID]:
    first = uuid.uuid4()
    second = next(r for r in iter(uuid.uuid4, None) if r.int % threads != first.int % threads)
    return first, second


@pytest.fixture
def published(monkeypatch):
    """The events the domain publishes, with what the test's probe saw at that moment."""
    seen = []
    probe = {"call": lambda event: None}

    def publisher(event):
        seen.append((event, probe["call"](event)))
        return True

    monkeypatch.setattr(events, "_publisher", publisher)
    return seen, probe


def _lock_free_in_another_session(room_id: uuid.UUID) -> bool | None:
    """Whether another connection could take the room's lock now (None: SQLite has none)."""
    if connection.vendor != "postgresql":
        return None
    result = []

    def probe():
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [advisory_key(room_id)])
                taken = cursor.fetchone()[0]
                if taken:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [advisory_key(room_id)])
                result.append(taken)
        finally:
            other.close()

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return result[0]


async def test_room_database_writes_two_rooms_at_once_each_on_its_own_thread(settings):
    """On PostgreSQL a write of room A that waits for room B's write finishes: they do not
    share a thread; a room keeps its thread. (SQLite: Channels' one database thread.)"""
    settings.CHAT_DB_WRITE_THREADS = 2
    if connection.vendor != "postgresql":
        name = await room_database(uuid.uuid4())(lambda: threading.current_thread().name)()
        assert not name.startswith("chat-room-writer-")
        return
    room_a, room_b = _rooms_on_different_threads(2)
    b_wrote = threading.Event()
    threads_used = {room_a: set(), room_b: set()}

    def write_a() -> bool:
        threads_used[room_a].add(threading.current_thread().name)
        return b_wrote.wait(timeout=5)

    def write_b() -> None:
        threads_used[room_b].add(threading.current_thread().name)
        b_wrote.set()

    a_saw_b, _ = await asyncio.gather(
        room_database(room_a)(write_a)(), room_database(room_b)(write_b)()
    )
    assert a_saw_b, "room B's write ran while room A's was still in progress"
    for _ in range(3):
        await room_database(room_a)(
            lambda: threads_used[room_a].add(threading.current_thread().name)
        )()
    assert len(threads_used[room_a]) == 1
    assert threads_used[room_a] != threads_used[room_b]


def test_room_order_lets_one_change_of_a_room_in_at_a_time():
    room_id, inside, most_inside = uuid.uuid4(), [0], [0]
    guard = threading.Lock()

    def change():
        ordered_change()
        connection.close()

    def ordered_change():
        with room_order(room_id):
            with guard:
                inside[0] += 1
                most_inside[0] = max(most_inside[0], inside[0])
            threading.Event().wait(0.002)
            with guard:
                inside[0] -= 1

    threads = [threading.Thread(target=change) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most_inside[0] == 1


def test_room_order_is_held_across_processes_until_left_even_when_the_change_failed():
    """On PostgreSQL the room's advisory lock: another session cannot take it meanwhile."""
    room_id = uuid.uuid4()
    free_during = []
    with pytest.raises(DatabaseError), room_order(room_id):
        free_during.append(_lock_free_in_another_session(room_id))
        raise DatabaseError("the write failed")
    free_after = _lock_free_in_another_session(room_id)
    if connection.vendor == "postgresql":
        assert (free_during, free_after) == ([False], True)
    else:
        assert (free_during, free_after) == ([None], None)


def test_room_order_inside_a_callers_transaction_lasts_until_it_ends():
    """The admin's pages run in a transaction: on PostgreSQL the order is then the room's
    transaction lock (a wait PostgreSQL's deadlock detector sees), held to the commit. On SQLite
    no lock of ours is taken there: SQLite's write lock orders the writers."""
    room_id = uuid.uuid4()
    with transaction.atomic():
        with room_order(room_id):
            pass
        after_leaving = _lock_free_in_another_session(room_id)
    after_commit = _lock_free_in_another_session(room_id)
    if connection.vendor == "postgresql":
        assert (after_leaving, after_commit) == (False, True)
    else:
        assert (after_leaving, after_commit) == (None, None)


def test_a_busy_room_refuses_a_change_after_the_timeout_and_stores_nothing(settings):
    """A stalled holder of the room's order must not stall its writers for ever."""
    settings.CHAT_ROOM_ORDER_TIMEOUT_SECONDS = 0.2
    author = make_user()
    room = make_room(members=[author])
    if connection.vendor != "postgresql":
        return  # one process, and its lock is held only by running code: nothing to stall
    held, release = threading.Event(), threading.Event()

    def hold():
        with room_order(room.pk):
            held.set()
            release.wait(5)
        connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    try:
        with pytest.raises(RoomBusy):
            message_create(room=room, author=author, text="waits")
    finally:
        release.set()
        holder.join()
    assert not Message.objects.filter(text="waits").exists()
    assert message_create(room=room, author=author, text="then goes").created


def test_a_message_is_announced_while_its_room_order_is_still_held(published):
    """So no later change of the room, from any process, can be announced before it."""
    seen, probe = published
    author = make_user()
    room = make_room(members=[author])
    probe["call"] = lambda event: _lock_free_in_another_session(event.room_id)

    result = message_create(room=room, author=author, text="hi")

    assert [event.message.pk for event, _ in seen] == [result.message.pk]
    assert result.announcement.delivered is True
    if connection.vendor == "postgresql":
        assert seen[0][1] is False, "the lock was free while the message was announced"
        assert _lock_free_in_another_session(room.pk) is True


def test_nothing_is_announced_for_a_change_that_rolled_back(published):
    seen, _ = published
    author = make_user()
    room = make_room(members=[author])
    with pytest.raises(RuntimeError), transaction.atomic():
        message_create(room=room, author=author, text="never")
        raise RuntimeError("the caller's transaction fails")
    assert seen == []
    assert not Message.objects.filter(text="never").exists()


def _record_statements(statements: list):
    """An execute wrapper: (first two words of the SQL, inside a transaction?) per statement."""

    def record(execute, sql, params, many, context):
        statements.append((" ".join(sql.split()[:2]), connection.in_atomic_block))
        return execute(sql, params, many, context)

    return record


def test_a_message_costs_a_member_check_and_one_insert_outside_a_transaction(published):
    """The room's order serializes its writes already: no BEGIN/COMMIT and no row lock around
    the INSERT; on PostgreSQL the advisory lock is taken and released around it. The room's
    webhook subscriptions are looked up first (none: no transaction; webhooks.outbox)."""
    author = make_user()
    room = make_room(members=[author])
    statements = []
    with connection.execute_wrapper(_record_statements(statements)):
        result = message_create(room=room, author=author, text="hi")
    assert result.created
    expected = [("SELECT r.read_only", False), ("SELECT 1", False), ("INSERT INTO", False)]
    if connection.vendor == "postgresql":
        expected = [
            ("SELECT pg_try_advisory_lock(%s)", False),
            ("SELECT r.read_only", False),  # the membership, inside the order
            ("SELECT 1", False),  # any webhook subscription of the room?
            ("INSERT INTO", False),
            ("SELECT pg_advisory_unlock(%s)", False),
        ]
    assert statements == expected


def test_an_admin_rename_in_its_transaction_and_an_edit_of_the_room_both_finish(published):
    """The Django admin saves a room, then renames it through the services, all in one
    transaction, while a socket edits a message of the room: neither waits for ever (the edit
    locks the message's row, not the room's; the order's waits are PostgreSQL's to see)."""
    admin, bob = make_user(), make_user()
    room = make_room(admins=[admin], members=[bob])
    message = message_create(room=room, author=bob, text="hi").message
    finished, errors = [], []

    def admin_rename():
        try:
            with transaction.atomic():
                room.name = "renamed"
                room.save()
                threading.Event().wait(0.3)  # the edit starts meanwhile
                services.room_rename(room=room, name="renamed")
            finished.append("rename")
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    def socket_edit():
        threading.Event().wait(0.1)
        try:
            services.message_edit(room=room, message_id=message.pk, editor=bob, text="edited")
            finished.append("edit")
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=admin_rename), threading.Thread(target=socket_edit)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15)
    assert not any(thread.is_alive() for thread in threads), "a change waited for ever"
    assert errors == [] and sorted(finished) == ["edit", "rename"]
    assert Message.objects.get(pk=message.pk).text == "edited"
