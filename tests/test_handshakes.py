"""chat.realtime.handshakes: many handshakes checked in one call give each its own verdict."""

import asyncio
import time
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework_simplejwt import authentication, tokens
from rest_framework_simplejwt.tokens import AccessToken

from accounts.tickets import ticket_issue
from chat.protocol import Rejection
from chat.realtime.auth import Credential
from chat.realtime.handshakes import HandshakeRequest, check_handshakes
from tests import factories

pytestmark = pytest.mark.django_db


def token(value: str, room_id) -> HandshakeRequest:
    return HandshakeRequest(Credential("token", value), str(room_id), "/ws/chat/x/")


def ticket(value: str, room_id) -> HandshakeRequest:
    return HandshakeRequest(Credential("ticket", value), str(room_id), "/ws/chat/x/")


def token_naming(user_id) -> str:
    """A genuine token (our key) whose user claim is `user_id`."""
    access = AccessToken()
    access["user_id"] = user_id
    return str(access)


def test_one_call_gives_every_handshake_its_own_verdict(room, alice, bob, outsider):
    inactive = factories.make_user("inactive", is_active=False)
    gone = factories.make_user("gone")
    frank = factories.make_user("frank")
    for member in (inactive, gone, frank):
        room.memberships.create(user=member)
    gone_token = factories.access_token(gone)
    gone.delete()
    erin = factories.make_user("erin")
    room.memberships.create(user=erin)
    erin_ticket = ticket_issue(user=erin, token_expires_at=time.time() + 600)

    cases = [
        (token(factories.access_token(alice), room.pk), alice, None),
        (token(factories.access_token(outsider), room.pk), outsider, Rejection.NOT_A_MEMBER),
        (token(factories.access_token(inactive), room.pk), None, Rejection.USER_INACTIVE),
        (token(gone_token, room.pk), None, Rejection.TOKEN_INVALID),
        (token(factories.expired_access_token(bob), room.pk), None, Rejection.TOKEN_EXPIRED),
        (token(factories.refresh_token(bob), room.pk), None, Rejection.TOKEN_INVALID),
        (token(token_naming("not-a-number"), room.pk), None, Rejection.TOKEN_INVALID),
        (token(token_naming(10**30), room.pk), None, Rejection.TOKEN_INVALID),
        (token(factories.access_token(alice), uuid.uuid4()), alice, Rejection.ROOM_NOT_FOUND),
        (token(factories.access_token(alice), "not-a-room"), alice, Rejection.ROOM_NOT_FOUND),
        (ticket(erin_ticket, room.pk), erin, None),
        (ticket(erin_ticket, room.pk), None, Rejection.TOKEN_INVALID),  # spent just above
        (token(factories.access_token(frank), room.pk), frank, None),
        (token(factories.access_token(bob), room.pk), bob, None),
    ]
    checks = check_handshakes([request for request, _, _ in cases])

    verdicts = [(check.auth.user.pk, check.rejection) for check in checks]
    expected = [(user.pk if user else None, rejection) for _, user, rejection in cases]
    assert verdicts == expected
    for check in checks:
        assert (check.room is not None) == (check.rejection is None)
        if check.room is not None:
            assert check.room.pk == room.pk


def test_the_users_and_rooms_of_many_handshakes_take_two_queries(room):
    members = [factories.make_user(f"member{n}") for n in range(30)]
    for member in members:
        room.memberships.create(user=member)
    other_room = factories.make_room(members=members[:10], name="Outra")
    requests = [token(factories.access_token(m), room.pk) for m in members] + [
        token(factories.access_token(m), other_room.pk) for m in members[:10]
    ]

    with CaptureQueriesContext(connection) as queries:
        checks = check_handshakes(requests)

    assert [check.rejection for check in checks] == [None] * 40
    assert [check.auth.user.pk for check in checks] == [m.pk for m in members + members[:10]]
    assert [check.room.pk for check in checks] == [room.pk] * 30 + [other_room.pk] * 10
    assert len(queries.captured_queries) == 2, [q["sql"] for q in queries.captured_queries]


def test_a_changed_password_refuses_the_token_when_simplejwt_checks_it(room, alice, monkeypatch):
    """simplejwt's own rules apply to users read for many tokens at once."""
    # simplejwt's modules hold the settings object they imported; a settings override would
    # rebind only its own module's name.
    monkeypatch.setattr(authentication.api_settings, "CHECK_REVOKE_TOKEN", True)
    assert tokens.api_settings is authentication.api_settings
    before = token(factories.access_token(alice), room.pk)
    alice.set_password("a-new-password-456")
    alice.save()
    after = token(factories.access_token(alice), room.pk)

    checks = check_handshakes([before, after])

    assert [check.rejection for check in checks] == [Rejection.TOKEN_INVALID, None]


@pytest.fixture
def checked_by_name(monkeypatch):
    """check_handshakes answering each request with its own text, and a log of its calls."""
    from chat.realtime import handshakes

    calls = []

    def check(requests):
        calls.append(list(requests))
        return [f"checked {request}" for request in requests]

    monkeypatch.setattr(handshakes, "check_handshakes", check)
    return calls


async def test_a_handshake_whose_client_left_is_not_checked(checked_by_name):
    from chat.realtime.handshakes import _HandshakeQueue

    queue = _HandshakeQueue()
    first = asyncio.ensure_future(queue.check("first"))
    gone = asyncio.ensure_future(queue.check("gone"))
    await asyncio.sleep(0)  # both are waiting; the queue's task has not run yet
    gone.cancel()

    assert await asyncio.wait_for(first, 5) == "checked first"
    assert checked_by_name == [["first"]]


async def test_handshakes_still_get_checked_after_the_queue_task_was_cancelled(checked_by_name):
    """Cancelled before it ever ran (its `finally` never runs): the next handshake starts a
    new task, which checks the earlier one too."""
    from chat.realtime.handshakes import _HandshakeQueue

    queue = _HandshakeQueue()
    first = asyncio.ensure_future(queue.check("first"))
    await asyncio.sleep(0)
    queue._task.cancel()
    await asyncio.sleep(0)

    second = await asyncio.wait_for(queue.check("second"), 5)

    assert second == "checked second"
    assert await asyncio.wait_for(first, 5) == "checked first"
