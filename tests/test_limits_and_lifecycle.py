"""Per-user and per-IP limits, token expiry and deactivation while connected, production checks."""

import asyncio
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.core.checks import run_checks
from rest_framework_simplejwt.tokens import AccessToken

from chat.domain.models import Message
from chat.realtime import ratelimit
from tests import factories
from tests.ws import assert_rejected, joined, open_socket, room_path

pytestmark = pytest.mark.django_db(transaction=True)


async def collect_codes(communicator, count: int) -> list[str]:
    frames = [await communicator.receive_json_from() for _ in range(count)]
    return [frame.get("code", frame["type"]) for frame in frames]


async def test_user_rate_limit_is_shared_by_all_sockets_of_a_user(room, alice, settings):
    settings.CHAT_USER_RATE_LIMIT_BURST = 4
    settings.CHAT_USER_RATE_LIMIT_PER_SECOND = 0.01
    first = await joined(room_path(room), token=factories.access_token(alice))
    second = await joined(room_path(room), token=factories.access_token(alice))

    for number in range(3):
        await first.send_json_to({"message": f"a{number}"})
        await first.receive_json_from()
        await second.receive_json_from()
    await second.send_json_to({"message": "b0"})
    await second.receive_json_from()
    await first.receive_json_from()
    await second.send_json_to({"message": "b1"})

    assert await collect_codes(second, 1) == ["rate_limited"]
    assert await Message.objects.acount() == 4
    await first.disconnect()
    await second.disconnect()


async def test_public_room_rate_limit_is_per_client_address(settings):
    settings.CHAT_PUBLIC_IP_RATE_LIMIT_BURST = 2
    settings.CHAT_PUBLIC_IP_RATE_LIMIT_PER_SECOND = 0.01
    first = await joined("/ws/chat/teste/")
    second = await joined("/ws/chat/teste/")
    await first.send_json_to({"message": "1"})
    await second.send_json_to({"message": "2"})
    await second.send_json_to({"message": "3"})
    first_codes = await collect_codes(first, 2)
    second_codes = await collect_codes(second, 3)
    assert first_codes == ["chat.message", "chat.message"]
    assert sorted(second_codes) == ["chat.message", "chat.message", "rate_limited"]
    await first.disconnect()
    await second.disconnect()


async def test_failed_handshakes_from_one_address_are_then_refused_with_4429(room, alice, settings):
    settings.CHAT_FAILED_HANDSHAKES_BURST = 3
    settings.CHAT_FAILED_HANDSHAKES_PER_MINUTE = 600  # one token back every 0.1 s
    for _ in range(3):
        await assert_rejected(
            await open_socket(room_path(room), token="bad"), "token_invalid", 4401
        )

    blocked = await open_socket(room_path(room), token=factories.access_token(alice))
    frame = await assert_rejected(blocked, "rate_limited", 4429)
    assert "failed connection attempts" in frame["detail"]

    await asyncio.sleep(0.3)
    allowed = await joined(room_path(room), token=factories.access_token(alice))
    await allowed.disconnect()


async def refusals_of(sockets) -> list[tuple[str, int]]:
    """Each socket's first frame (its error code, or connection.established) and close code."""
    outcomes = []
    for socket in sockets:
        frame = await socket.receive_json_from()
        if frame["type"] != "error":
            outcomes.append((frame["type"], None))
            await socket.disconnect()
            continue
        closed = await socket.receive_output()
        await socket.disconnect(code=closed["code"])
        outcomes.append((frame["code"], closed["code"]))
    return outcomes


async def test_failed_handshakes_sent_together_are_refused_past_the_burst(room, settings):
    """Issue 15 item 13: 10 bad handshakes at once against a burst of 3 let 3 through, not 10."""
    settings.CHAT_FAILED_HANDSHAKES_BURST = 3
    settings.CHAT_FAILED_HANDSHAKES_PER_MINUTE = 0.01
    sockets = await asyncio.gather(
        *(open_socket(room_path(room), token=f"bad{n}") for n in range(10))
    )
    outcomes = await refusals_of(sockets)
    assert sorted(outcomes) == [("rate_limited", 4429)] * 7 + [("token_invalid", 4401)] * 3


async def test_good_handshakes_sent_together_from_one_address_all_connect(
    room, alice, bob, settings
):
    """More members than the failure burst connecting at once from one address (an office
    behind NAT): they wait for each other's checks, none is refused, and no token is spent."""
    settings.CHAT_FAILED_HANDSHAKES_BURST = 2
    settings.CHAT_FAILED_HANDSHAKES_PER_MINUTE = 0.01
    tokens = [factories.access_token(user) for user in (alice, bob) * 4]
    sockets = await asyncio.gather(*(open_socket(room_path(room), token=t) for t in tokens))
    assert await refusals_of(sockets) == [("connection.established", None)] * 8
    for _ in range(2):
        await assert_rejected(
            await open_socket(room_path(room), token="bad"), "token_invalid", 4401
        )
    await assert_rejected(await open_socket(room_path(room), token="bad"), "rate_limited", 4429)


async def test_attempt_limiter_holds_a_token_per_attempt_in_flight():
    limiter = ratelimit.AttemptLimiter(rate=0.0001, burst=2)
    assert await limiter.admit("a") and await limiter.admit("a")
    third = asyncio.create_task(limiter.admit("a"))
    gone = asyncio.create_task(limiter.admit("a"))
    await asyncio.sleep(0)
    assert not third.done() and not gone.done(), "both tokens are held: wait"
    gone.cancel()  # its client went away while it waited
    assert await limiter.admit("b"), "other addresses are not held up"
    limiter.settle("a", failed=False)  # a success gives its token back ...
    assert await third
    limiter.settle("a", failed=True)  # ... a failure spends it
    limiter.settle("a", failed=True)
    assert not await limiter.admit("a"), "no token left: refused at once"


async def test_token_expiring_while_connected_closes_the_socket_at_expiry(room, alice):
    token = AccessToken.for_user(alice)
    token.set_exp(lifetime=timedelta(seconds=1.5))
    communicator = await joined(room_path(room), token=str(token))

    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from() == {"type": "pong"}
    frame = await communicator.receive_json_from(timeout=4)
    assert (frame["type"], frame["code"]) == ("error", "token_expired")
    assert await communicator.receive_output() == {"type": "websocket.close", "code": 4401}


async def test_user_deactivated_while_connected_is_closed(room, alice, bob):
    member = await joined(room_path(room), token=factories.access_token(bob))
    other = await joined(room_path(room), token=factories.access_token(alice))

    bob.is_active = False
    await database_sync_to_async(bob.save)()

    await assert_rejected(member, "user_inactive", 4401)
    assert await other.receive_nothing()
    await other.disconnect()


@pytest.mark.parametrize(
    ("overrides", "expected_ids"),
    [
        ({"DEBUG": True}, []),
        ({"DEBUG": False}, ["crm.E001"]),
        ({"DEBUG": False, "SECRET_KEY": "k" * 50, "ALLOWED_HOSTS": ["*"]}, ["crm.E002"]),
        ({"DEBUG": False, "SECRET_KEY": "k" * 50, "ALLOWED_HOSTS": ["chat.example.com"]}, []),
    ],
)
def test_production_checks_refuse_dev_defaults(settings, overrides, expected_ids):
    settings.SECRET_KEY = settings.DEV_SECRET_KEY
    settings.ALLOWED_HOSTS = ["localhost"]
    for name, value in overrides.items():
        setattr(settings, name, value)
    assert [message.id for message in run_checks(tags=["chat"])] == expected_ids


def test_test_page_is_served_with_a_content_security_policy(client):
    response = client.get("/static/test_chat_websocket.html")
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'sha256-" in policy
    assert "'unsafe-inline'" not in policy
    assert client.get("/").headers["Location"] == "/static/test_chat_websocket.html"
