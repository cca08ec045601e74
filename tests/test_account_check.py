"""The periodic account check: the access rule re-read for a process's open sockets, in one
query, and the sockets it no longer admits closed (chat.realtime.liveness, chat.domain.access)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.domain.access import ROOMS_PER_QUERY, AccessLost, refused_connections
from chat.domain.models import Membership
from tests.factories import access_token, make_room, make_user
from tests.ws import assert_rejected, joined, room_path

pytestmark = pytest.mark.django_db(transaction=True)


def test_refused_connections_says_why_for_each_socket(room, alice, bob, outsider):
    other = make_room(members=[alice, bob, outsider])
    gone = make_user("gone")
    gone_pk = gone.pk
    Membership.objects.create(room=room, user=gone)
    gone.delete()
    get_user_model().objects.filter(pk=bob.pk).update(is_active=False)
    Membership.objects.filter(room=other, user=outsider).delete()
    pairs = {
        (alice.pk, room.pk),
        (alice.pk, other.pk),
        (bob.pk, room.pk),
        (bob.pk, other.pk),
        (outsider.pk, other.pk),
        (gone_pk, room.pk),
    }

    with CaptureQueriesContext(connection) as queries:
        refused = refused_connections(pairs)

    assert len(queries) == 2  # the memberships; who lost one, why
    assert refused == {
        (bob.pk, room.pk): AccessLost.USER_INACTIVE,
        (bob.pk, other.pk): AccessLost.USER_INACTIVE,
        (outsider.pk, other.pk): AccessLost.REMOVED_FROM_ROOM,
        (gone_pk, room.pk): AccessLost.USER_DELETED,
    }


def test_refused_connections_without_a_lost_membership_take_one_query(room, alice, bob):
    other = make_room(members=[alice])
    get_user_model().objects.filter(pk=bob.pk).update(is_active=False)
    with CaptureQueriesContext(connection) as queries:
        refused = refused_connections(
            {(alice.pk, room.pk), (alice.pk, other.pk), (bob.pk, room.pk)}
        )
    assert len(queries) == 1
    assert refused == {(bob.pk, room.pk): AccessLost.USER_INACTIVE}


def test_refused_connections_of_many_rooms_take_one_query_per_batch(room, alice):
    rooms = [make_room(members=[alice]) for _ in range(ROOMS_PER_QUERY + 1)]
    with CaptureQueriesContext(connection) as queries:
        refused = refused_connections({(alice.pk, each.pk) for each in rooms})
    assert len(queries) == 2
    assert refused == {}


async def test_user_deactivated_without_an_event_is_closed_by_the_check(room, alice, bob, settings):
    """`update()` sends no signal, as SQL or another process on the in-memory layer."""
    settings.CHAT_ACCOUNT_CHECK_SECONDS = 0.2
    deactivated = await joined(room_path(room), token=access_token(bob))
    bystander = await joined(room_path(room), token=access_token(alice))

    await get_user_model().objects.filter(pk=bob.pk).aupdate(is_active=False)

    await assert_rejected(deactivated, "user_inactive", 4401)
    assert await bystander.receive_nothing(0.5)
    await bystander.disconnect()


async def test_membership_deleted_without_an_event_closes_that_room(room, alice, bob, settings):
    settings.CHAT_ACCOUNT_CHECK_SECONDS = 0.2
    other = await sync_to_async(make_room)(members=[bob])
    removed = await joined(room_path(room), token=access_token(bob))
    kept = await joined(room_path(other), token=access_token(bob))

    await Membership.objects.filter(room=room, user=bob).adelete()

    await assert_rejected(removed, "removed_from_room", 4403)
    assert await kept.receive_nothing(0.5)
    await kept.disconnect()
