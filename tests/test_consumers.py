"""ChatConsumer through the real ASGI app: rejections, chat, fan-out, storage."""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from django.db import DatabaseError

from chat.domain.models import Membership, Message
from tests import factories
from tests.ws import assert_rejected, joined, open_socket, room_path

pytestmark = pytest.mark.django_db(transaction=True)

UNKNOWN_ROOM = "/ws/chat/6f1c5a4e-0000-4000-8000-000000000000/"


async def stored_count() -> int:
    return await Message.objects.acount()


async def test_chat_member_receives_connection_established(room, alice):
    communicator = await open_socket(room_path(room), token=factories.access_token(alice))
    frame = await communicator.receive_json_from()
    assert frame == {
        "type": "connection.established",
        "room": {
            "id": str(room.pk),
            "name": "Chat - Gerência",
            "type": "community",
            "change_seq": 0,
        },
        "user": {"id": alice.pk, "username": "alice"},
    }
    await communicator.disconnect()


async def test_sockets_of_a_room_share_its_instance_until_the_room_changes(
    room, alice, bob, monkeypatch
):
    """One Room instance per room for a process's sockets (memory per idle socket), and a
    socket that joins after a rename is told the new name."""
    from chat.realtime.consumers.room import ChatConsumer

    consumers = []
    check = ChatConsumer.connection_rejection

    async def recorded(consumer, room_id):
        consumers.append(consumer)
        return await check(consumer, room_id)

    monkeypatch.setattr(ChatConsumer, "connection_rejection", recorded)
    first = await joined(room_path(room), token=factories.access_token(alice))
    second = await joined(room_path(room), token=factories.access_token(bob))
    room.name = "Renomeada"
    await database_sync_to_async(room.save)()
    third = await open_socket(room_path(room), token=factories.access_token(bob))

    established = await third.receive_json_from()
    held = [consumer.room for consumer in consumers]
    assert established["room"]["name"] == "Renomeada"
    assert [instance.name for instance in held] == ["Chat - Gerência"] * 2 + ["Renomeada"]
    assert held[0] is held[1] and held[2] is not held[0]
    assert not any(hasattr(instance, "member_pk") for instance in held)  # no one user's
    for communicator in (first, second, third):
        await communicator.disconnect()


async def test_chat_message_is_stored_then_broadcast_to_every_member(room, alice, bob):
    sender = await joined(room_path(room), token=factories.access_token(alice))
    receiver = await joined(room_path(room), token=factories.access_token(bob))

    await sender.send_json_to(
        {"type": "chat.message", "message": "Olá, equipe", "client_id": "c-1"}
    )

    echoed = await sender.receive_json_from()
    received = await receiver.receive_json_from()
    assert echoed == received
    stored = await Message.objects.select_related("author").aget()
    assert received["id"] == stored.id
    assert received["message"] == stored.text == "Olá, equipe"
    assert received["user"] == {"id": alice.pk, "username": "alice"}
    assert received["room"] == str(room.pk)
    assert received["client_id"] == "c-1"
    assert received["created_at"].endswith("Z")
    await sender.disconnect()
    await receiver.disconnect()


async def test_chat_tutorial_frame_with_only_message_is_a_chat_message(room, alice):
    communicator = await joined(room_path(room), token=factories.access_token(alice))
    await communicator.send_json_to({"message": "formato do tutorial"})
    frame = await communicator.receive_json_from()
    assert frame["type"] == "chat.message"
    assert frame["message"] == "formato do tutorial"
    assert await stored_count() == 1
    await communicator.disconnect()


async def test_chat_non_member_is_rejected_and_receives_nothing_of_the_room(room, alice, outsider):
    member = await joined(room_path(room), token=factories.access_token(alice))
    await member.send_json_to({"message": "antes"})
    await member.receive_json_from()

    intruder = await open_socket(room_path(room), token=factories.access_token(outsider))
    # The very first frame is the refusal (no history, no established), then the close.
    await assert_rejected(intruder, "not_a_member", 4403)
    await member.disconnect()


@pytest.mark.parametrize(
    ("make_token", "code"),
    [
        (lambda user: None, "authentication_required"),
        (lambda user: "garbage", "token_invalid"),
        (lambda user: "x" * 10_000, "token_invalid"),
        (factories.token_signed_with_other_key, "token_invalid"),
        (factories.unsigned_token, "token_invalid"),
        (factories.refresh_token, "token_invalid"),
        (factories.expired_access_token, "token_expired"),
    ],
    ids=["none", "garbage", "10kb", "other-key", "alg-none", "refresh", "expired"],
)
async def test_chat_bad_token_is_rejected_with_4401(room, alice, make_token, code):
    communicator = await open_socket(room_path(room), token=make_token(alice))
    await assert_rejected(communicator, code, 4401)


async def test_chat_inactive_user_token_is_rejected(room, bob):
    token = factories.access_token(bob)
    bob.is_active = False
    await bob.asave()
    communicator = await open_socket(room_path(room), token=token)
    await assert_rejected(communicator, "user_inactive", 4401)


async def test_chat_deleted_user_token_is_rejected(room, bob):
    token = factories.access_token(bob)
    await bob.adelete()
    communicator = await open_socket(room_path(room), token=token)
    await assert_rejected(communicator, "token_invalid", 4401)


async def test_chat_bearer_header_is_accepted_and_wins_over_query_token(room, alice):
    communicator = await open_socket(
        room_path(room), token="garbage", bearer=factories.access_token(alice)
    )
    frame = await communicator.receive_json_from()
    assert frame["type"] == "connection.established"
    await communicator.disconnect()


@pytest.mark.parametrize(
    "path",
    [UNKNOWN_ROOM, "/ws/chat/not-a-uuid/", "/ws/chat/123/"],
    ids=["unknown-uuid", "malformed", "number"],
)
async def test_chat_unknown_or_malformed_room_is_4404(alice, path):
    communicator = await open_socket(path, token=factories.access_token(alice))
    await assert_rejected(communicator, "room_not_found", 4404)


@pytest.mark.parametrize("path", ["/ws/", "/ws/other/", "/ws/chat/", "/ws/chat/teste/extra/"])
async def test_unknown_websocket_path_is_4404(db, path):
    communicator = await open_socket(path)
    await assert_rejected(communicator, "room_not_found", 4404)


async def test_chat_checks_authentication_before_room_existence(db):
    """The first failing check is the one reported: no token beats an unknown room."""
    communicator = await open_socket(UNKNOWN_ROOM)
    await assert_rejected(communicator, "authentication_required", 4401)


async def test_chat_foreign_origin_is_rejected_before_authentication(room, alice):
    communicator = await open_socket(
        room_path(room), token=factories.access_token(alice), origin="https://evil.example"
    )
    await assert_rejected(communicator, "origin_not_allowed", 4403)


async def test_chat_handshake_reads_the_database_in_one_call(room, alice, monkeypatch):
    """Token, room and membership: one trip to the database thread, two queries (the user;
    the room joined to the membership), whatever the rejection path costs."""
    calls = count_handshake_checks(monkeypatch)
    communicator = await joined(room_path(room), token=factories.access_token(alice))
    await communicator.disconnect()
    assert [size for size, _ in calls] == [1]
    queries = calls[0][1]
    assert len(queries) == 2, queries
    assert "chat_membership" in queries[1]


async def test_chat_handshakes_arriving_together_are_checked_together(room, monkeypatch):
    """Twenty members connecting at once: a few trips to the database thread, none checking
    more than MAX_BATCH, two queries per trip however many it checks, and each socket gets
    its own user."""
    members = []
    for number in range(20):
        member = await database_sync_to_async(factories.make_user)(f"burst{number}")
        await Membership.objects.acreate(room=room, user=member)
        members.append(member)
    calls = count_handshake_checks(monkeypatch)
    monkeypatch.setattr("chat.realtime.handshakes.MAX_BATCH", 8)
    sockets = await asyncio.gather(
        *(open_socket(room_path(room), token=factories.access_token(m)) for m in members)
    )
    established = [await socket.receive_json_from() for socket in sockets]
    assert [frame["user"]["username"] for frame in established] == [m.username for m in members]
    sizes = [size for size, _ in calls]
    assert sum(sizes) == 20
    assert max(sizes) <= 8 and len(calls) <= 5, sizes
    assert all(len(queries) == 2 for _, queries in calls), calls
    for socket in sockets:
        await socket.disconnect()


def count_handshake_checks(monkeypatch) -> list[tuple[int, list[str]]]:
    """(handshakes checked, SQL run) of each trip to the database thread for handshakes."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from chat.realtime import handshakes

    calls = []
    check_handshakes = handshakes.check_handshakes

    def counted(requests):
        with CaptureQueriesContext(connection) as queries:
            result = check_handshakes(requests)
        calls.append((len(requests), [query["sql"] for query in queries.captured_queries]))
        return result

    monkeypatch.setattr(handshakes, "check_handshakes", counted)
    return calls


@pytest.mark.parametrize(
    "origin", ["http://localhost:3000", "http://127.0.0.1:8000", "http://localhost:8000"]
)
async def test_chat_allowed_origins_connect(room, alice, origin):
    """A listed origin, or the page of the host the socket connects to (same origin)."""
    communicator = await joined(
        room_path(room),
        token=factories.access_token(alice),
        origin=origin,
        host=origin.removeprefix("http://"),
    )
    await communicator.disconnect()


async def test_chat_allowed_origins_follow_the_setting(room, alice, settings):
    """CHAT_ALLOWED_ORIGINS lets the React app's production origin in; the server's own hosts
    stay allowed and any other origin stays out."""
    token = factories.access_token(alice)
    before = await open_socket(room_path(room), token=token, origin="https://crm.example.com")
    await assert_rejected(before, "origin_not_allowed", 4403)

    settings.CHAT_ALLOWED_ORIGINS = ["https://crm.example.com"]
    allowed = await joined(room_path(room), token=token, origin="https://crm.example.com")
    await allowed.disconnect()
    other = await open_socket(room_path(room), token=token, origin="https://other.example.com")
    await assert_rejected(other, "origin_not_allowed", 4403)


async def test_chat_null_origin_is_refused_for_real_rooms(room, alice):
    communicator = await open_socket(
        room_path(room), token=factories.access_token(alice), origin="null"
    )
    await assert_rejected(communicator, "origin_not_allowed", 4403)


async def test_chat_retry_with_same_client_id_is_stored_once_and_not_rebroadcast(room, alice, bob):
    sender = await joined(room_path(room), token=factories.access_token(alice))
    receiver = await joined(room_path(room), token=factories.access_token(bob))
    frame = {"type": "chat.message", "message": "uma vez", "client_id": "retry-7"}

    await sender.send_json_to(frame)
    first = await sender.receive_json_from()
    await receiver.receive_json_from()
    await sender.send_json_to(frame)
    again = await sender.receive_json_from()

    assert again == first
    assert await stored_count() == 1
    assert await receiver.receive_nothing()
    await sender.disconnect()
    await receiver.disconnect()


async def test_chat_same_client_id_from_another_author_is_a_new_message(room, alice, bob):
    first = await joined(room_path(room), token=factories.access_token(alice))
    second = await joined(room_path(room), token=factories.access_token(bob))
    await first.send_json_to({"message": "a", "client_id": "same"})
    await first.receive_json_from()
    await second.receive_json_from()
    await second.send_json_to({"message": "b", "client_id": "same"})
    await second.receive_json_from()
    assert await stored_count() == 2
    await first.disconnect()
    await second.disconnect()


async def test_chat_storage_failure_answers_not_persisted_and_broadcasts_nothing(
    room, alice, bob, monkeypatch
):
    def failing_store(**kwargs):
        raise DatabaseError("disk I/O error")

    monkeypatch.setattr("chat.realtime.consumers.room.message_create", failing_store)
    sender = await joined(room_path(room), token=factories.access_token(alice))
    receiver = await joined(room_path(room), token=factories.access_token(bob))

    await sender.send_json_to({"message": "perdida?"})

    error = await sender.receive_json_from()
    assert error["type"] == "error"
    assert error["code"] == "not_persisted"
    assert await receiver.receive_nothing()
    assert await stored_count() == 0
    await sender.send_json_to({"type": "ping"})
    assert await sender.receive_json_from() == {"type": "pong"}, "socket stays open"
    await sender.disconnect()
    await receiver.disconnect()


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", "invalid_json"),
        ("[1, 2]", "invalid_frame"),
        ('"text"', "invalid_frame"),
        ("{}", "invalid_frame"),
        ('{"type": "chat.message", "message": 42}', "invalid_frame"),
        ('{"type": "chat.message", "message": null}', "invalid_frame"),
        ('{"message": "x", "client_id": 5}', "invalid_frame"),
        ('{"message": "x", "client_id": "' + "c" * 65 + '"}', "invalid_frame"),
        ('{"type": "chat.delete"}', "invalid_frame"),
        ('{"type": "chat_broadcast", "frame": "spoof"}', "unknown_type"),
        ('{"message": ""}', "empty_message"),
        ('{"message": "   \\n\\t "}', "empty_message"),
        ('{"message": "' + "a" * 4001 + '"}', "message_too_long"),
    ],
)
async def test_chat_bad_frame_gets_error_frame_and_socket_stays_open(room, alice, bob, text, code):
    sender = await joined(room_path(room), token=factories.access_token(alice))
    receiver = await joined(room_path(room), token=factories.access_token(bob))

    await sender.send_to(text_data=text)

    error = await sender.receive_json_from()
    assert (error["type"], error["code"]) == ("error", code)
    assert await receiver.receive_nothing()
    assert await stored_count() == 0
    await sender.send_json_to({"type": "ping"})
    assert await sender.receive_json_from() == {"type": "pong"}
    await sender.disconnect()
    await receiver.disconnect()


async def test_chat_message_of_exactly_the_limit_is_stored(room, alice):
    communicator = await joined(room_path(room), token=factories.access_token(alice))
    await communicator.send_json_to({"message": "a" * 4000})
    frame = await communicator.receive_json_from()
    assert frame["type"] == "chat.message"
    assert len(frame["message"]) == 4000
    await communicator.disconnect()


async def test_chat_spoofed_identity_fields_are_ignored(room, alice, bob):
    communicator = await joined(room_path(room), token=factories.access_token(bob))
    await communicator.send_json_to(
        {
            "message": "sou eu",
            "user": {"id": alice.pk, "username": "alice"},
            "id": 999,
            "room": "00000000-0000-0000-0000-000000000000",
            "username": "alice",
        }
    )
    frame = await communicator.receive_json_from()
    assert frame["user"] == {"id": bob.pk, "username": "bob"}
    assert frame["room"] == str(room.pk)
    assert frame["id"] != 999
    stored = await Message.objects.aget()
    assert stored.author_id == bob.pk
    await communicator.disconnect()


async def test_chat_ping_answers_pong(room, alice):
    communicator = await joined(room_path(room), token=factories.access_token(alice))
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from() == {"type": "pong"}
    await communicator.disconnect()


async def test_chat_binary_frame_closes_with_1003(room, alice):
    communicator = await joined(room_path(room), token=factories.access_token(alice))
    await communicator.send_to(bytes_data=b"\x00\x01")
    await assert_rejected(communicator, "binary_not_supported", 1003)


async def test_chat_frame_over_limit_closes_with_1009_and_stores_nothing(room, alice):
    communicator = await joined(room_path(room), token=factories.access_token(alice))
    await communicator.send_to(text_data=json.dumps({"message": "a" * (200 * 1024)}))
    await assert_rejected(communicator, "frame_too_big", 1009)
    assert await stored_count() == 0


async def test_chat_burst_is_rate_limited_then_closed_with_4429(room, alice, bob):
    sender = await joined(room_path(room), token=factories.access_token(alice))
    receiver = await joined(room_path(room), token=factories.access_token(bob))
    for number in range(300):
        await sender.send_json_to({"message": f"flood {number}"})

    codes = []
    while True:
        output = await sender.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            break
        frame = json.loads(output["text"])
        codes.append(frame.get("code", frame["type"]))
    assert output["code"] == 4429
    assert "rate_limited" in codes
    assert codes[-1] == "rate_limited"
    stored = await stored_count()
    assert stored == codes.count("chat.message") < 300
    delivered = 0
    while not await receiver.receive_nothing(timeout=0.2):
        delivered += 1
        await receiver.receive_json_from()
    assert delivered == stored, "only stored messages are broadcast"
    await receiver.disconnect()


async def test_chat_removed_member_socket_closes_with_4403(room, alice, bob):
    from channels.db import database_sync_to_async

    from chat.domain.services import membership_remove

    member = await joined(room_path(room), token=factories.access_token(bob))
    admin = await joined(room_path(room), token=factories.access_token(alice))

    await database_sync_to_async(membership_remove)(room=room, user=bob)

    await assert_rejected(member, "removed_from_room", 4403)
    told = await admin.receive_json_from()
    assert told == {
        "type": "member.removed",
        "room": str(room.pk),
        "user": {"id": bob.pk},
    }
    assert await admin.receive_nothing(), "other members stay connected"
    await admin.send_json_to({"type": "ping"})
    assert await admin.receive_json_from() == {"type": "pong"}
    await admin.disconnect()


async def test_chat_messages_arrive_in_send_order(room, alice, bob):
    sender = await joined(room_path(room), token=factories.access_token(alice))
    receiver = await joined(room_path(room), token=factories.access_token(bob))
    for number in range(20):
        await sender.send_json_to({"message": f"m{number}"})
    received = [await receiver.receive_json_from() for _ in range(20)]
    assert [frame["message"] for frame in received] == [f"m{n}" for n in range(20)]
    ids = [frame["id"] for frame in received]
    assert ids == sorted(ids)
    await asyncio.gather(sender.disconnect(), receiver.disconnect())


async def test_chat_unexpected_failure_says_internal_error_and_leaks_nothing(
    room, alice, monkeypatch, caplog
):
    def broken_store(**kwargs):
        raise RuntimeError("secret internals: /srv/app/settings.py")

    monkeypatch.setattr("chat.realtime.consumers.room.message_create", broken_store)
    communicator = await joined(room_path(room), token=factories.access_token(alice))
    await communicator.send_json_to({"message": "oi"})
    frame = await assert_rejected(communicator, "internal_error", 1011)
    assert "secret" not in frame["detail"]
    assert "secret internals" in caplog.text, "the server log has the traceback"


async def test_chat_database_failure_refuses_every_handshake_checked_with_it(
    room, alice, bob, monkeypatch
):
    """The database fails while two handshakes are checked together: each is told to retry
    (1013), and once it is back the next handshake is checked normally."""
    from chat.realtime import handshakes

    database_down = True
    rooms_for_connections = handshakes.rooms_for_connections
    failed_calls = []

    def flaky(requests):
        if database_down:
            failed_calls.append(len(requests))
            raise DatabaseError("connection refused")
        return rooms_for_connections(requests)

    monkeypatch.setattr(handshakes, "rooms_for_connections", flaky)
    refused = await asyncio.gather(
        open_socket(room_path(room), token=factories.access_token(alice)),
        open_socket(room_path(room), token=factories.access_token(bob)),
    )
    for communicator in refused:
        await assert_rejected(communicator, "service_unavailable", 1013)
    assert failed_calls == [2], "both were checked in the call that failed"

    database_down = False
    communicator = await joined(room_path(room), token=factories.access_token(alice))
    await communicator.disconnect()


async def test_chat_unexpected_failure_at_handshake_is_internal_error(room, alice, monkeypatch):
    def broken_access(requests):
        raise RuntimeError("boom")

    monkeypatch.setattr("chat.realtime.handshakes.rooms_for_connections", broken_access)
    communicator = await open_socket(room_path(room), token=factories.access_token(alice))
    await assert_rejected(communicator, "internal_error", 1011)


# --- error frames say what they answer and whether the socket closes -------------------------


@pytest.mark.parametrize(
    "frame, code",
    [
        ({"type": "chat.message", "message": " ", "client_id": "c-1"}, "empty_message"),
        ({"type": "nonsense", "client_id": "c-1"}, "unknown_type"),
        ({"type": "read", "message_id": "x", "client_id": "c-1"}, "invalid_frame"),
        (
            {"type": "reaction.add", "message_id": 999999, "emoji": "👍", "client_id": "c-1"},
            "message_not_found",
        ),
        (
            {"type": "chat.edit", "message_id": 999999, "message": "oi", "client_id": "c-1"},
            "message_not_found",
        ),
    ],
)
async def test_an_error_carries_the_client_id_of_the_frame_it_answers(room, alice, frame, code):
    socket = await joined(room_path(room), token=factories.access_token(alice))
    await socket.send_json_to(frame)

    error = await socket.receive_json_from()

    assert error == {
        "type": "error",
        "code": code,
        "detail": error["detail"],
        "client_id": "c-1",
        "closing": False,
    }
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from() == {"type": "pong"}, "the next answer is its own"
    await socket.disconnect()


async def test_an_error_answers_no_client_id_it_could_not_read(room, alice):
    socket = await joined(room_path(room), token=factories.access_token(alice))
    await socket.send_json_to({"type": "chat.message", "message": "oi", "client_id": 7})
    error = await socket.receive_json_from()
    assert (error["code"], "client_id" in error, error["closing"]) == (
        "invalid_frame",
        False,
        False,
    )
    await socket.disconnect()


async def test_a_refusal_that_closes_says_so_with_its_close_code(room, outsider):
    socket = await open_socket(room_path(room), token=factories.access_token(outsider))
    frame = await assert_rejected(socket, "not_a_member", 4403)
    assert (frame["closing"], frame["close_code"]) == (True, 4403)
