"""Reads: room_list_for_user, room_detail, last_messages and message_list, called directly."""

import pytest
from django.contrib.auth.models import AnonymousUser

from chat.domain import selectors
from chat.domain.models import Message
from tests.factories import make_room, make_user


def add_messages(room, author, count: int) -> list[int]:
    """Store `count` more messages in `room`; returns the ids of all its messages, oldest first."""
    Message.objects.bulk_create(
        Message(room=room, author=author, text=f"m{n}") for n in range(count)
    )
    return list(Message.objects.filter(room=room).order_by("id").values_list("id", flat=True))


# --- room_list_for_user


def test_room_list_for_user_counts_every_member_not_the_join(alice, bob, outsider):
    """Filtering on the user's membership must not shrink member_count to 1."""
    carol = make_user("carol")
    team = make_room(admins=[alice], members=[bob, carol], name="Equipe")
    make_room(admins=[outsider], name="Alheia")

    rooms = list(selectors.room_list_for_user(user=bob))

    assert [(room.pk, room.member_count) for room in rooms] == [(team.pk, 3)]


def test_room_list_for_user_counts_each_room_separately(alice, bob, outsider):
    big = make_room(admins=[alice], members=[bob, outsider], name="A")
    small = make_room(admins=[alice], name="B")

    counts = {room.pk: room.member_count for room in selectors.room_list_for_user(user=alice)}

    assert counts == {big.pk: 3, small.pk: 1}


def test_room_list_for_user_lists_each_room_once_sorted_by_name(alice, bob):
    make_room(admins=[alice], members=[bob], name="Zeta")
    make_room(admins=[alice], members=[bob], name="Alfa")

    names = [room.name for room in selectors.room_list_for_user(user=alice)]

    assert names == ["Alfa", "Zeta"]


@pytest.mark.parametrize("who", ["inactive", "anonymous"])
def test_room_list_for_user_is_empty_without_an_active_user(db, who):
    sleeper = make_user(is_active=False)
    make_room(members=[sleeper])
    user = sleeper if who == "inactive" else AnonymousUser()

    assert list(selectors.room_list_for_user(user=user)) == []


def test_room_detail_loads_members_and_count(room, alice, bob):
    detail = selectors.room_detail(user=bob, room_id=room.pk)

    assert detail.member_count == 2
    assert [(m.user.username, m.role) for m in detail.memberships.all()] == [
        ("alice", "admin"),
        ("bob", "member"),
    ]


def test_last_messages_maps_each_room_to_its_newest(alice):
    first = make_room(admins=[alice], name="A")
    second = make_room(admins=[alice], name="B")
    empty = make_room(admins=[alice], name="C")
    not_asked = make_room(admins=[alice], name="D")
    Message.objects.create(room=first, author=alice, text="a1")
    newest_second = Message.objects.create(room=second, author=alice, text="b1")
    newest_first = Message.objects.create(room=first, author=alice, text="a2")
    Message.objects.create(room=not_asked, author=alice, text="d1")

    latest = selectors.last_messages(rooms=[first, second, empty])

    assert {room_id: message.pk for room_id, message in latest.items()} == {
        first.pk: newest_first.pk,
        second.pk: newest_second.pk,
    }


# --- message_list


def test_message_list_latest_page_is_oldest_first(room, alice):
    ids = add_messages(room, alice, 5)

    page = selectors.message_list(room=room, limit=3)

    assert [message.pk for message in page.results] == ids[-3:]
    assert page.has_more is True


def test_message_list_whole_history_has_no_more(room, alice):
    ids = add_messages(room, alice, 3)

    page = selectors.message_list(room=room, limit=3)

    assert [message.pk for message in page.results] == ids
    assert page.has_more is False


def test_message_list_ignores_other_rooms(room, alice):
    other = make_room(admins=[alice], name="Outra")
    add_messages(other, alice, 2)
    ids = add_messages(room, alice, 2)
    add_messages(other, alice, 2)

    page = selectors.message_list(room=room)

    assert [message.pk for message in page.results] == ids
    assert {message.room_id for message in page.results} == {room.pk}


@pytest.mark.parametrize(
    ("before_index", "limit", "expected", "has_more"),
    [
        (10, 3, slice(7, 10), True),
        (3, 3, slice(0, 3), False),
        (2, 3, slice(0, 2), False),
        (0, 3, slice(0, 0), False),
    ],
)
def test_message_list_before_pages_back(room, alice, before_index, limit, expected, has_more):
    ids = add_messages(room, alice, 12)

    page = selectors.message_list(room=room, before=ids[before_index], limit=limit)

    assert [message.pk for message in page.results] == ids[expected]
    assert page.has_more is has_more


@pytest.mark.parametrize(
    ("after_index", "limit", "expected", "has_more"),
    [
        (None, 4, slice(0, 4), True),
        (3, 4, slice(4, 8), True),
        (7, 4, slice(8, 12), False),
        (9, 4, slice(10, 12), False),
        (11, 4, slice(12, 12), False),
    ],
)
def test_message_list_after_pages_forward(room, alice, after_index, limit, expected, has_more):
    ids = add_messages(room, alice, 12)
    after = 0 if after_index is None else ids[after_index]

    page = selectors.message_list(room=room, after=after, limit=limit)

    assert [message.pk for message in page.results] == ids[expected]
    assert page.has_more is has_more


def test_message_list_before_and_after_give_the_window_between(room, alice):
    ids = add_messages(room, alice, 10)

    page = selectors.message_list(room=room, after=ids[2], before=ids[6], limit=50)

    assert [message.pk for message in page.results] == ids[3:6]
    assert page.has_more is False


def test_message_list_loads_authors_in_the_same_query(room, alice, bob, django_assert_num_queries):
    Message.objects.create(room=room, author=alice, text="a")
    Message.objects.create(room=room, author=bob, text="b")

    with django_assert_num_queries(1):
        page = selectors.message_list(room=room)
        names = [message.author_username for message in page.results]

    assert names == ["alice", "bob"]


def test_message_list_rows_render_as_the_stored_message_does(room, alice):
    """A history row gives the same payload as the stored message (edited and deleted too)."""
    from chat import protocol
    from chat.domain import services

    kept = services.message_create(room=room, author=alice, text="kept", client_id="c-1").message
    edited = services.message_create(room=room, author=alice, text="draft").message
    edited = services.message_edit(
        room=room, message_id=edited.pk, editor=alice, text="final"
    ).value
    gone = services.message_create(room=room, author=alice, text="oops").message
    gone = services.message_delete(room=room, message_id=gone.pk, actor=alice).value

    page = selectors.message_list(room=room)

    stored = [Message.objects.select_related("author").get(pk=m.pk) for m in (kept, edited, gone)]
    assert [protocol.message_payload(row) for row in page.results] == [
        protocol.message_payload(message) for message in stored
    ]
    assert page.results[1].text == "final" and page.results[2].deleted_at is not None


# --- member_message_list: history through the access rule, in the page's own query


def test_member_message_list_reads_a_members_page_in_one_query(
    room, alice, bob, django_assert_num_queries
):
    ids = add_messages(room, alice, 5)

    with django_assert_num_queries(1):
        page = selectors.member_message_list(user=bob, room_id=room.pk, limit=3)

    assert [message.pk for message in page.results] == ids[2:]
    assert page.has_more is True
    assert page.results == selectors.message_list(room=room, limit=3).results


def test_member_message_list_is_none_for_outsiders_and_unknown_rooms(room, alice, outsider):
    import uuid

    add_messages(room, alice, 3)

    assert selectors.member_message_list(user=outsider, room_id=room.pk) is None
    assert selectors.member_message_list(user=AnonymousUser(), room_id=room.pk) is None
    assert selectors.member_message_list(user=alice, room_id=uuid.uuid4()) is None


def test_member_message_list_of_an_empty_page_is_a_page_not_a_refusal(room, alice):
    ids = add_messages(room, alice, 2)

    page = selectors.member_message_list(user=alice, room_id=room.pk, after=ids[-1])

    assert page is not None
    assert page.results == [] and page.has_more is False


def test_member_message_list_refuses_a_deactivated_member(room, alice, bob):
    add_messages(room, alice, 2)
    bob.is_active = False
    bob.save()

    assert selectors.member_message_list(user=bob, room_id=room.pk) is None


@pytest.mark.parametrize("page", ["latest", "before", "after"])
def test_a_page_reads_the_room_index_even_when_the_room_holds_most_messages(
    page, room, alice, outsider
):
    """A room holding most of the table, another room's messages newer than all of its own,
    a member of many rooms: every page must come from the (room, id) index. PostgreSQL chose
    to walk the primary key backwards through the other room's messages for `room = X`, and
    to scan and sort each of the user's rooms when access was joined to the user's rooms."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    other = make_room(admins=[outsider], name="Outra")
    for n in range(30):
        make_room(admins=[outsider], members=[alice], name=f"Sala {n}")
    ids = add_messages(room, alice, 5000)
    add_messages(other, outsider, 1000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    around = {"latest": {}, "before": {"before": ids[2500]}, "after": {"after": ids[2500]}}

    with CaptureQueriesContext(connection) as queries:
        selectors.member_message_list(user=alice, room_id=room.pk, **around[page])
    sql = queries.captured_queries[0]["sql"]
    with connection.cursor() as cursor:
        explain = "EXPLAIN " if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN "
        cursor.execute(explain + sql)
        plan = "\n".join(str(row) for row in cursor.fetchall())

    if connection.vendor == "postgresql":
        # Access checked once (EXISTS), never joined to the user's rooms: with many rooms and
        # members PostgreSQL then scanned and sorted each of them (too few here to show).
        assert "EXISTS" in sql and " IN (SELECT" not in sql, sql
    assert "message_room_id_idx" in plan, plan
    assert "chat_message_pkey" not in plan, plan  # PostgreSQL's primary key walk
    assert "chat_message_room_id_" not in plan, plan  # the room's foreign key index, unordered
    assert "chat_message USING INTEGER PRIMARY KEY" not in plan, plan  # SQLite's
