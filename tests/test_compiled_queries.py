"""crm_backend.compiled_queries: a history page's SQL is compiled once per shape, and every call
reads with its own room, user, before and after (never the values it was compiled with)."""

from unittest import mock

import pytest
from django.db.models.sql.compiler import SQLCompiler

from chat import selectors
from chat.fields import MARKER
from chat.models import Message, Room
from crm_backend import compiled_queries
from tests.factories import make_room, make_user


@pytest.fixture
def compiles(monkeypatch):
    """Counts SQL compilations (subqueries included), from an empty cache of compiled queries."""
    monkeypatch.setattr(compiled_queries._compiled, "queries", {}, raising=False)
    counter = mock.Mock()
    as_sql = SQLCompiler.as_sql

    def counted(compiler, *args, **kwargs):
        counter()
        return as_sql(compiler, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "as_sql", counted)
    return counter


def texts(page) -> list[str]:
    return [message.text for message in page.results]


def fill(room, author, prefix: str, count: int) -> list[int]:
    Message.objects.bulk_create(
        Message(room=room, author=author, text=f"{prefix}{n}") for n in range(count)
    )
    return list(Message.objects.filter(room=room).order_by("id").values_list("id", flat=True))


@pytest.mark.django_db
def test_a_shape_is_compiled_once_and_then_read_with_other_values(compiles):
    alice, bob = make_user("alice"), make_user("bob")
    first = make_room(members=[alice], name="first")
    second = make_room(members=[bob], name="second")
    first_ids = fill(first, alice, "a", 6)
    second_ids = fill(second, bob, "b", 6)

    page = selectors.member_message_list(user=alice, room_id=first.pk, before=first_ids[4], limit=2)
    compiled_first = compiles.call_count
    assert compiled_first >= 1
    assert texts(page) == ["a2", "a3"] and page.has_more is True

    page = selectors.member_message_list(user=bob, room_id=second.pk, before=second_ids[2], limit=2)
    assert compiles.call_count == compiled_first  # the same shape: no compilation
    assert texts(page) == ["b0", "b1"] and page.has_more is False


@pytest.mark.django_db
def test_a_compiled_page_checks_the_user_of_each_call(monkeypatch):
    """The member the shape was compiled for must not let the next caller in."""
    monkeypatch.setattr(compiled_queries._compiled, "queries", {}, raising=False)
    member, stranger = make_user("member"), make_user("stranger")
    room = make_room(members=[member])
    fill(room, member, "m", 3)

    assert texts(selectors.member_message_list(user=member, room_id=room.pk)) == ["m0", "m1", "m2"]
    assert selectors.member_message_list(user=stranger, room_id=room.pk) is None
    assert texts(selectors.member_message_list(user=member, room_id=room.pk)) == ["m0", "m1", "m2"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "window, expected",
    [
        ({}, ["t7", "t8", "t9"]),
        ({"before": 5}, ["t2", "t3", "t4"]),
        ({"after": 5}, ["t6", "t7", "t8"]),
        ({"after": 2, "before": 5}, ["t3", "t4"]),
    ],
)
def test_each_shape_reads_its_window(window, expected):
    author = make_user()
    room = make_room(members=[author])
    ids = fill(room, author, "t", 10)
    ids_window = {name: ids[index] for name, index in window.items()}

    direct = selectors.message_list(room=room, limit=3, **ids_window)
    member = selectors.member_message_list(user=author, room_id=room.pk, limit=3, **ids_window)

    assert texts(direct) == texts(member) == expected


@pytest.mark.django_db
def test_a_compiled_page_converts_values_as_the_orm_does():
    """Text stored with NUL (escaped on PostgreSQL) comes back as it was sent."""
    author = make_user()
    room = make_room(members=[author])
    sent = ["antes\x00depois", MARKER + "looks like our marker", "plain"]
    for text in sent:
        Message.objects.create(room=room, author=author, text=text)

    page = selectors.member_message_list(user=author, room_id=room.pk)

    assert texts(page) == sent
    assert all(message.created_at.tzinfo is not None for message in page.results)


@pytest.mark.django_db
def test_a_value_the_orm_writes_into_the_sql_cannot_be_a_stand_in():
    with pytest.raises(ValueError, match="SQL changes"):
        compiled_queries.CompiledQuery(
            lambda values: Room.objects.all()[: values["limit"]].values_list("id"),
            {"limit": (77, 78)},
        )


@pytest.mark.django_db
def test_a_constant_equal_to_a_stand_in_stays_a_constant(room, alice):
    ids = fill(room, alice, "c", 5)
    query = compiled_queries.CompiledQuery(
        lambda values: (
            Message.objects.filter(id__gt=values["after"], id__lte=ids[2])
            .order_by("id")
            .values_list("id")
        ),
        {"after": (ids[2], ids[2] + 1000)},  # the first stand-in equals the constant
    )

    assert query.rows(after=ids[0]) == [(ids[1],), (ids[2],)]


@pytest.mark.django_db
@pytest.mark.parametrize("window", [{"after": 2**63}, {"before": 2**63}, {"after": 2**70}])
def test_ids_beyond_the_columns_range_read_as_the_orm_reads_them(window, room, alice, bob):
    """No message is newer than such an `after`, and every message is older than such a
    `before`; SQLite refuses the number itself as a parameter."""
    ids = fill(room, alice, "r", 3)
    expected = [] if "after" in window else ids

    page = selectors.member_message_list(user=bob, room_id=room.pk, **window)
    direct = selectors.message_list(room=room, **window)

    assert [message.pk for message in page.results] == expected
    assert [message.pk for message in direct.results] == expected


@pytest.mark.django_db
def test_each_thread_keeps_at_most_max_shapes(room, alice, monkeypatch):
    monkeypatch.setattr(compiled_queries._compiled, "queries", {}, raising=False)
    monkeypatch.setattr(compiled_queries, "MAX_SHAPES", 2)
    fill(room, alice, "s", 3)

    pages = [selectors.message_list(room=room, limit=limit) for limit in (1, 2, 3)]

    assert [len(page.results) for page in pages] == [1, 2, 3]
    assert len(compiled_queries._compiled.queries) == 2
