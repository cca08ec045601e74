"""Team chat through the real ASGI app: presence, typing, read markers and unread counts, edit
and delete with their audit trail, direct rooms and the access pre-flight (docs/protocol.md,
"Team chat frames")."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from chat.domain.models import Membership, Message, MessageRevision, Room
from chat.domain.services import message_delete, message_edit
from chat.realtime.presence import RedisPresence, presence_store
from tests import factories
from tests.e2e.services import require_shared_redis, unique_prefix
from tests.factories import access_token, make_room, make_user
from tests.ws import assert_rejected, joined, open_socket, room_path

pytestmark = pytest.mark.django_db(transaction=True)

QUIET = 0.2  # seconds a socket must stay silent to count as "received nothing"
NO_PRESENCE = ("presence",)  # for tests about typing and read frames


# --- helpers ------------------------------------------------------------------------------


async def member(room, user, *, ignore=()):
    """`user`'s socket to `room`, past connection.established; sees every frame by default."""
    return await joined(room_path(room), token=access_token(user), ignore=ignore)


def api(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(user)}")
    return client


async def rest(user, method: str, path: str, data: dict | None = None):
    """A REST call as `user`, from async code (the view runs in a worker thread)."""

    def call():
        return getattr(api(user), method)(path, data, format="json")

    return await sync_to_async(call)()


def presence_of(user, status: str, room) -> dict:
    return {
        "type": "presence",
        "room": str(room.pk),
        "user": {"id": user.pk, "username": user.username},
        "status": status,
    }


def typing_of(user, is_typing: bool, room) -> dict:
    return {
        "type": "typing",
        "room": str(room.pk),
        "user": {"id": user.pk, "username": user.username},
        "is_typing": is_typing,
    }


def read_of(user, message_id: int, room) -> dict:
    return {
        "type": "read",
        "room": str(room.pk),
        "user": {"id": user.pk, "username": user.username},
        "message_id": message_id,
    }


async def post(room, author, *texts: str) -> list[int]:
    ids = []
    for text in texts:
        ids.append((await Message.objects.acreate(room=room, author=author, text=text)).pk)
    return ids


async def marker(room, user) -> int:
    membership = await Membership.objects.aget(room=room, user=user)
    return membership.last_read_message_id


async def close_all(*sockets) -> None:
    for socket in sockets:
        await socket.disconnect()


async def assert_error(socket, code: str) -> None:
    frame = await socket.receive_json_from()
    assert frame["type"] == "error", frame
    assert frame["code"] == code, frame
    assert frame["detail"]
    # An error frame leaves the socket open.
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from() == {"type": "pong"}


# --- presence -----------------------------------------------------------------------------


async def test_presence_first_socket_online_last_socket_offline(room, alice, bob):
    """Several tabs count once: online with the first socket, offline with the last."""
    watcher = await member(room, alice)

    tab1 = await member(room, bob)
    assert await watcher.receive_json_from() == presence_of(bob, "online", room)
    assert await tab1.receive_nothing(QUIET), "the joining socket gets no presence of its own"

    tab2 = await member(room, bob)
    assert await watcher.receive_nothing(QUIET), "a second tab is not a second 'online'"
    assert await tab1.receive_nothing(QUIET)
    assert await tab2.receive_nothing(QUIET)

    await tab1.disconnect()
    assert await watcher.receive_nothing(QUIET), "bob still has a tab open"
    assert await tab2.receive_nothing(QUIET)

    await tab2.disconnect()
    assert await watcher.receive_json_from() == presence_of(bob, "offline", room)
    assert await watcher.receive_nothing(QUIET)
    await watcher.disconnect()


async def test_presence_frames_stay_in_their_room(room, alice, bob):
    other = await sync_to_async(make_room)(admins=[alice], members=[bob], name="Outra")
    watcher = await member(other, alice)
    bob_socket = await member(room, bob)
    assert await watcher.receive_nothing(QUIET)
    await close_all(bob_socket, watcher)


async def test_presence_rest_lists_exactly_the_online_members(room, alice, bob, outsider):
    carol = await sync_to_async(make_user)("carol")
    await Membership.objects.acreate(room=room, user=carol)
    elsewhere = await sync_to_async(make_room)(members=[outsider], name="Fora")
    url = f"/api/chat/rooms/{room.pk}/presence/"

    response = await rest(alice, "get", url)
    assert response.status_code == 200
    assert response.json() == {"online": []}

    alice_socket = await member(room, alice)
    bob_tabs = [await member(room, bob), await member(room, bob)]
    outsider_socket = await member(elsewhere, outsider)  # online, but in another room
    expected = [{"id": alice.pk, "username": "alice"}, {"id": bob.pk, "username": "bob"}]
    assert (await rest(carol, "get", url)).json() == {"online": expected}

    await close_all(*bob_tabs)
    assert (await rest(carol, "get", url)).json() == {"online": expected[:1]}
    await close_all(alice_socket)
    assert (await rest(carol, "get", url)).json() == {"online": []}

    assert (await rest(outsider, "get", url)).status_code == 404
    assert (await rest(None, "get", url)).status_code == 401
    await outsider_socket.disconnect()


async def test_presence_removed_member_goes_offline(room, alice, bob):
    watcher = await member(room, alice)
    bob_socket = await member(room, bob)
    assert await watcher.receive_json_from() == presence_of(bob, "online", room)

    response = await rest(alice, "delete", f"/api/chat/rooms/{room.pk}/members/{bob.pk}/")
    assert response.status_code == 204
    await assert_rejected(bob_socket, "removed_from_room", 4403)

    removed = {"type": "member.removed", "room": str(room.pk), "user": {"id": bob.pk}}
    assert await watcher.receive_json_from() == removed
    assert await watcher.receive_json_from() == presence_of(bob, "offline", room)
    online = (await rest(alice, "get", f"/api/chat/rooms/{room.pk}/presence/")).json()
    assert online == {"online": [{"id": alice.pk, "username": "alice"}]}
    await watcher.disconnect()


@pytest.fixture
def redis_presence(settings):
    """Presence in the real Redis (the store every server process shares), own key prefix."""
    settings.REDIS_URL = require_shared_redis()
    settings.CHANNEL_LAYER_PREFIX = unique_prefix()
    store = presence_store()
    assert isinstance(store, RedisPresence)
    return store


async def dead_process_entry(store, settings, room_id, user_id: int) -> None:
    """A socket of a process that was killed: its entry is no longer renewed and expires."""
    ttl = settings.CHAT_PRESENCE_TTL_SECONDS
    settings.CHAT_PRESENCE_TTL_SECONDS = 0.05
    await store.change(room_id, user_id, "killed-process!conn", join=True)
    settings.CHAT_PRESENCE_TTL_SECONDS = ttl
    await asyncio.sleep(0.1)


@pytest.mark.redis
async def test_presence_expired_user_is_announced_even_if_someone_joins_first(
    redis_presence, settings
):
    """A socket joining the room before the watchdog's next round must not swallow the
    expired entries of other users: the watchdog still has to announce them offline."""
    room_id = uuid.uuid4()
    await dead_process_entry(redis_presence, settings, room_id, user_id=7)
    assert await redis_presence.change(room_id, 8, "alive!conn", join=True) == 1

    assert await redis_presence.expired_users(room_id) == {7}
    assert await sync_to_async(redis_presence.online_user_ids)(room_id) == {8}
    assert await redis_presence.expired_users(room_id) == set(), "announced once"


@pytest.mark.redis
async def test_presence_user_with_an_expired_tab_is_counted_by_live_tabs_only(
    redis_presence, settings
):
    room_id = uuid.uuid4()
    await dead_process_entry(redis_presence, settings, room_id, user_id=7)
    assert await redis_presence.change(room_id, 7, "a!1", join=True) == 1, "online again"
    assert await redis_presence.change(room_id, 7, "a!2", join=True) == 2
    assert await redis_presence.change(room_id, 7, "a!1", join=False) == 1
    assert await redis_presence.change(room_id, 7, "a!2", join=False) == 0, "offline now"
    assert await redis_presence.expired_users(room_id) == set(), "not announced twice"


# --- typing -------------------------------------------------------------------------------


async def test_typing_is_relayed_to_others_but_not_to_the_typist(room, alice, bob):
    typist = await member(room, alice, ignore=NO_PRESENCE)
    typist_tab2 = await member(room, alice, ignore=NO_PRESENCE)
    reader = await member(room, bob, ignore=NO_PRESENCE)

    await typist.send_json_to({"type": "typing", "is_typing": True})
    assert await reader.receive_json_from() == typing_of(alice, True, room)
    assert await typist_tab2.receive_json_from() == typing_of(alice, True, room)
    assert await typist.receive_nothing(QUIET), "the typist's own socket hears nothing"

    await typist.send_json_to({"type": "typing", "is_typing": False})
    assert await reader.receive_json_from() == typing_of(alice, False, room)
    assert await typist.receive_nothing(QUIET)
    await close_all(typist, typist_tab2, reader)


async def test_typing_true_repeated_within_a_second_is_relayed_once(room, alice, bob, settings):
    settings.CHAT_TYPING_TIMEOUT_SECONDS = 30
    typist = await member(room, alice, ignore=NO_PRESENCE)
    reader = await member(room, bob, ignore=NO_PRESENCE)

    for _ in range(5):
        await typist.send_json_to({"type": "typing", "is_typing": True})
    assert await reader.receive_json_from() == typing_of(alice, True, room)
    assert await reader.receive_nothing(0.5)

    # A second later, "still typing" is relayed again (at most once a second).
    assert await reader.receive_nothing(0.6)
    await typist.send_json_to({"type": "typing", "is_typing": True})
    assert await reader.receive_json_from() == typing_of(alice, True, room)
    await close_all(typist, reader)


async def test_typing_false_when_not_typing_is_not_relayed(room, alice, bob):
    typist = await member(room, alice, ignore=NO_PRESENCE)
    reader = await member(room, bob, ignore=NO_PRESENCE)
    await typist.send_json_to({"type": "typing", "is_typing": False})
    assert await reader.receive_nothing(QUIET)
    await close_all(typist, reader)


async def test_typing_stops_by_itself_after_the_timeout(room, alice, bob, settings):
    settings.CHAT_TYPING_TIMEOUT_SECONDS = 0.3
    typist = await member(room, alice, ignore=NO_PRESENCE)
    reader = await member(room, bob, ignore=NO_PRESENCE)

    await typist.send_json_to({"type": "typing", "is_typing": True})
    assert await reader.receive_json_from() == typing_of(alice, True, room)
    assert await reader.receive_nothing(0.15), "not before the timeout"
    assert await reader.receive_json_from(timeout=2) == typing_of(alice, False, room)
    assert await reader.receive_nothing(0.5), "stopped once"
    assert await typist.receive_nothing(QUIET)
    await close_all(typist, reader)


async def test_typing_timeout_restarts_with_each_true(room, alice, bob, settings):
    settings.CHAT_TYPING_TIMEOUT_SECONDS = 0.5
    typist = await member(room, alice, ignore=NO_PRESENCE)
    reader = await member(room, bob, ignore=NO_PRESENCE)

    await typist.send_json_to({"type": "typing", "is_typing": True})
    assert await reader.receive_json_from() == typing_of(alice, True, room)
    assert await reader.receive_nothing(0.3)
    await typist.send_json_to({"type": "typing", "is_typing": True})  # throttled, not relayed
    assert await reader.receive_nothing(0.35), "the second true pushed the timeout back"
    assert await reader.receive_json_from(timeout=2) == typing_of(alice, False, room)
    await close_all(typist, reader)


async def typing_frames_until_quiet(reader, quiet: float) -> list[bool]:
    seen = []
    while not await reader.receive_nothing(quiet):
        frame = await reader.receive_json_from()
        assert frame["type"] == "typing", frame
        seen.append(frame["is_typing"])
    return seen


async def test_typing_stop_dropped_by_the_rate_limit_still_reaches_observers(
    room, alice, bob, settings
):
    """A client that sends `false` after each message: after three quick messages its third
    stop finds the typing bucket empty. Observers must still end on "not typing"."""
    settings.CHAT_TYPING_TIMEOUT_SECONDS = 1.0
    typist = await member(room, alice, ignore=NO_PRESENCE)
    reader = await member(room, bob, ignore=NO_PRESENCE)

    for is_typing in (True, False, True, False):  # messages one and two: the burst of 4
        await typist.send_json_to({"type": "typing", "is_typing": is_typing})
    assert await typing_frames_until_quiet(reader, 0.3) == [True, False, True, False]
    await asyncio.sleep(0.3)  # the bucket refills one relay: message three starts
    await typist.send_json_to({"type": "typing", "is_typing": True})
    await typist.send_json_to({"type": "typing", "is_typing": False})  # no token left
    assert await reader.receive_json_from() == typing_of(alice, True, room)

    # within the typing timeout, and once
    assert await reader.receive_json_from(timeout=1.0) == typing_of(alice, False, room)
    assert await reader.receive_nothing(1.5)
    await close_all(typist, reader)


async def test_typing_flipping_in_a_loop_stays_throttled_and_ends_not_typing(
    room, alice, bob, settings
):
    settings.CHAT_TYPING_TIMEOUT_SECONDS = 1.0
    typist = await member(room, alice, ignore=NO_PRESENCE)
    reader = await member(room, bob, ignore=NO_PRESENCE)
    for _ in range(20):
        await typist.send_json_to({"type": "typing", "is_typing": True})
        await typist.send_json_to({"type": "typing", "is_typing": False})

    seen = await typing_frames_until_quiet(reader, 1.5)
    assert len(seen) <= 8, seen  # the burst of 4 and what refills meanwhile, not 40
    assert seen[-1] is False
    await close_all(typist, reader)


async def test_typing_closing_the_socket_sends_typing_false(room, alice, bob):
    typist = await member(room, alice)
    reader = await member(room, bob)
    assert await typist.receive_json_from() == presence_of(bob, "online", room)

    await typist.send_json_to({"type": "typing", "is_typing": True})
    assert await reader.receive_json_from() == typing_of(alice, True, room)
    await typist.disconnect()

    assert await reader.receive_json_from() == typing_of(alice, False, room)
    assert await reader.receive_json_from() == presence_of(alice, "offline", room)
    await reader.disconnect()


async def test_typing_is_never_stored(room, alice, bob):
    typist = await member(room, alice, ignore=NO_PRESENCE)
    reader = await member(room, bob, ignore=NO_PRESENCE)
    await typist.send_json_to({"type": "typing", "is_typing": True})
    await reader.receive_json_from()
    await typist.send_json_to({"type": "typing", "is_typing": False})
    await reader.receive_json_from()
    assert await Message.objects.acount() == 0
    history = (await rest(bob, "get", f"/api/chat/rooms/{room.pk}/messages/")).json()
    assert history == {"results": [], "has_more": False}
    await close_all(typist, reader)


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "typing", "is_typing": "yes"},
        {"type": "typing", "is_typing": 1},
        {"type": "typing", "is_typing": None},
    ],
)
async def test_typing_invalid_is_typing_is_invalid_frame(room, alice, bob, frame):
    typist = await member(room, alice, ignore=NO_PRESENCE)
    reader = await member(room, bob, ignore=NO_PRESENCE)
    await typist.send_json_to(frame)
    await assert_error(typist, "invalid_frame")
    assert await reader.receive_nothing(QUIET)
    await close_all(typist, reader)


# --- read markers and unread counts -------------------------------------------------------


async def test_read_marker_is_stored_and_sent_to_members_and_own_devices(room, alice, bob):
    _, m2, _ = await post(room, alice, "um", "dois", "três")
    author = await member(room, alice, ignore=NO_PRESENCE)
    phone = await member(room, bob, ignore=NO_PRESENCE)
    laptop = await member(room, bob, ignore=NO_PRESENCE)

    await phone.send_json_to({"type": "read", "message_id": m2})

    assert await author.receive_json_from() == read_of(bob, m2, room)
    assert await laptop.receive_json_from() == read_of(bob, m2, room)
    assert await phone.receive_json_from() == read_of(bob, m2, room)
    assert await marker(room, bob) == m2
    assert await marker(room, alice) == 0, "only the reader's marker moves"
    await close_all(author, phone, laptop)


async def test_read_marker_only_moves_forward(room, alice, bob):
    m1, _, m3 = await post(room, alice, "um", "dois", "três")
    reader = await member(room, bob, ignore=NO_PRESENCE)

    await reader.send_json_to({"type": "read", "message_id": m3})
    assert (await reader.receive_json_from())["message_id"] == m3
    await reader.send_json_to({"type": "read", "message_id": m1})
    await reader.send_json_to({"type": "read", "message_id": m3})
    assert await reader.receive_nothing(QUIET), "a marker that did not move is not announced"
    assert await marker(room, bob) == m3
    await reader.disconnect()


async def test_read_unknown_or_other_rooms_message_is_message_not_found(room, alice, bob):
    await post(room, alice, "aqui")
    other = await sync_to_async(make_room)(admins=[alice], members=[bob], name="Outra")
    (foreign,) = await post(other, alice, "lá")
    reader = await member(room, bob, ignore=NO_PRESENCE)
    watcher = await member(room, alice, ignore=NO_PRESENCE)

    for message_id in (foreign, foreign + 1000):
        await reader.send_json_to({"type": "read", "message_id": message_id})
        await assert_error(reader, "message_not_found")
    for bad in (0, -1, "5", True, None):
        await reader.send_json_to({"type": "read", "message_id": bad})
        await assert_error(reader, "invalid_frame")
    assert await watcher.receive_nothing(QUIET)
    assert await marker(room, bob) == 0
    await close_all(reader, watcher)


async def test_read_over_rest_stores_and_broadcasts(room, alice, bob, outsider):
    m1, m2 = await post(room, alice, "um", "dois")
    author = await member(room, alice, ignore=NO_PRESENCE)
    bob_socket = await member(room, bob, ignore=NO_PRESENCE)
    url = f"/api/chat/rooms/{room.pk}/read/"

    response = await rest(bob, "post", url, {"message_id": m2})
    assert (response.status_code, response.json()) == (200, {"message_id": m2})
    assert await author.receive_json_from() == read_of(bob, m2, room)
    assert await bob_socket.receive_json_from() == read_of(bob, m2, room)
    assert await marker(room, bob) == m2

    response = await rest(bob, "post", url, {"message_id": m1})
    assert (response.status_code, response.json()) == (200, {"message_id": m2})
    assert await marker(room, bob) == m2

    other = await sync_to_async(make_room)(admins=[alice], members=[bob], name="Outra")
    (foreign,) = await post(other, alice, "lá")
    response = await rest(bob, "post", url, {"message_id": foreign})
    assert response.status_code == 404
    assert response.json()["code"] == "message_not_found"
    assert (await rest(bob, "post", url, {"message_id": 0})).status_code == 400
    assert (await rest(outsider, "post", url, {"message_id": m1})).status_code == 404
    assert await marker(room, bob) == m2
    await close_all(author, bob_socket)


def unread_counts(user) -> dict[str, int]:
    response = api(user).get("/api/chat/rooms/")
    assert response.status_code == 200
    return {room["name"]: room["unread_count"] for room in response.json()}


def test_read_unread_count_counts_others_messages_after_the_marker(room, alice, bob):
    """Others' messages after the marker; own messages and tombstones do not count."""
    make_room(admins=[alice], members=[bob], name="Quieta")
    ids = {}
    for name, author in [
        ("a1", alice),
        ("a2", alice),
        ("b1", bob),
        ("a3", alice),
        ("a4", alice),
        ("a5", alice),
        ("b2", bob),
    ]:
        ids[name] = Message.objects.create(room=room, author=author, text=name).pk
    message_delete(room=room, message_id=ids["a4"], actor=alice)

    assert unread_counts(bob) == {"Chat - Gerência": 4, "Quieta": 0}  # a1 a2 a3 a5
    assert unread_counts(alice) == {"Chat - Gerência": 2, "Quieta": 0}  # b1 b2

    Membership.objects.filter(room=room, user=bob).update(last_read_message_id=ids["a2"])
    assert unread_counts(bob)["Chat - Gerência"] == 2  # a3 a5
    Membership.objects.filter(room=room, user=bob).update(last_read_message_id=ids["b2"])
    assert unread_counts(bob)["Chat - Gerência"] == 0


async def test_read_unread_count_is_right_after_reconnect_and_on_another_device(room, alice, bob):
    _, a2, _ = await post(room, alice, "um", "dois", "três")
    counts = sync_to_async(unread_counts)
    assert (await counts(bob))["Chat - Gerência"] == 3

    phone = await member(room, bob, ignore=NO_PRESENCE)
    await phone.send_json_to({"type": "read", "message_id": a2})
    assert (await phone.receive_json_from())["message_id"] == a2
    await phone.disconnect()
    assert (await counts(bob))["Chat - Gerência"] == 1, "the laptop sees the phone's marker"

    phone = await member(room, bob, ignore=NO_PRESENCE)  # reconnect
    (a4,) = await post(room, alice, "quatro")
    assert (await counts(bob))["Chat - Gerência"] == 2
    await phone.send_json_to({"type": "read", "message_id": a4})
    assert (await phone.receive_json_from())["message_id"] == a4
    assert (await counts(bob))["Chat - Gerência"] == 0
    await phone.disconnect()


# --- edit ---------------------------------------------------------------------------------


async def test_edit_by_author_is_broadcast_stored_and_audited(room, alice, bob):
    (message_id,) = await post(room, alice, "Olá, equpie")
    author = await member(room, alice, ignore=NO_PRESENCE)
    reader = await member(room, bob, ignore=NO_PRESENCE)

    await author.send_json_to(
        {"type": "chat.edit", "message_id": message_id, "message": "Olá, equipe!"}
    )

    updated = await reader.receive_json_from()
    assert await author.receive_json_from() == updated
    assert updated["type"] == "chat.message.updated"
    assert updated["id"] == message_id
    assert updated["message"] == "Olá, equipe!"
    assert updated["user"] == {"id": alice.pk, "username": "alice"}
    assert updated["deleted"] is False
    assert updated["edited_at"].endswith("Z")
    assert updated["edited_at"] >= updated["created_at"]

    history = (await rest(bob, "get", f"/api/chat/rooms/{room.pk}/messages/")).json()
    (stored,) = history["results"]
    # An update carries every field but reactions (only chat.message.reactions changes them).
    assert stored == {**updated, "type": "chat.message", "reactions": []}

    revision = await MessageRevision.objects.select_related("actor").aget(message_id=message_id)
    assert revision.action == MessageRevision.Action.EDIT
    assert revision.previous_text == "Olá, equpie"
    assert revision.actor == alice
    assert await Message.objects.acount() == 1, "an edit is not a new message"
    await close_all(author, reader)


async def test_edit_twice_keeps_every_previous_text(room, alice):
    (message_id,) = await post(room, alice, "v1")
    author = await member(room, alice, ignore=NO_PRESENCE)
    for text in ("v2", "v3"):
        await author.send_json_to({"type": "chat.edit", "message_id": message_id, "message": text})
        assert (await author.receive_json_from())["message"] == text
    previous = [r.previous_text async for r in MessageRevision.objects.order_by("id")]
    assert previous == ["v1", "v2"]
    await author.disconnect()


async def test_edit_of_someone_elses_message_is_not_allowed(room, alice, bob):
    """Not even a room admin may edit another member's words."""
    (bobs,) = await post(room, bob, "do bob")
    (alices,) = await post(room, alice, "da alice")
    admin = await member(room, alice, ignore=NO_PRESENCE)
    plain = await member(room, bob, ignore=NO_PRESENCE)

    await plain.send_json_to({"type": "chat.edit", "message_id": alices, "message": "x"})
    await assert_error(plain, "not_allowed")
    await admin.send_json_to({"type": "chat.edit", "message_id": bobs, "message": "x"})
    await assert_error(admin, "not_allowed")

    assert [m.text async for m in Message.objects.order_by("id")] == ["do bob", "da alice"]
    assert await MessageRevision.objects.acount() == 0
    assert await admin.receive_nothing(QUIET)
    await close_all(admin, plain)


@pytest.mark.parametrize("how", ["window setting 0", "message older than the window"])
async def test_edit_after_the_window_is_refused(room, alice, bob, settings, how):
    (message_id,) = await post(room, alice, "antigo")
    if how == "window setting 0":
        settings.CHAT_EDIT_WINDOW_SECONDS = 0
    else:
        age = timedelta(seconds=settings.CHAT_EDIT_WINDOW_SECONDS + 5)
        await Message.objects.filter(pk=message_id).aupdate(created_at=timezone.now() - age)
    author = await member(room, alice, ignore=NO_PRESENCE)
    reader = await member(room, bob, ignore=NO_PRESENCE)

    await author.send_json_to({"type": "chat.edit", "message_id": message_id, "message": "novo"})
    await assert_error(author, "edit_window_expired")
    assert await reader.receive_nothing(QUIET)
    assert (await Message.objects.aget(pk=message_id)).text == "antigo"
    assert await MessageRevision.objects.acount() == 0
    await close_all(author, reader)


async def test_edit_within_the_window_setting_is_allowed(room, alice, settings):
    settings.CHAT_EDIT_WINDOW_SECONDS = 60
    (message_id,) = await post(room, alice, "recente")
    age = timedelta(seconds=50)
    await Message.objects.filter(pk=message_id).aupdate(created_at=timezone.now() - age)
    author = await member(room, alice, ignore=NO_PRESENCE)
    await author.send_json_to({"type": "chat.edit", "message_id": message_id, "message": "ok"})
    assert (await author.receive_json_from())["type"] == "chat.message.updated"
    await author.disconnect()


async def test_edit_refusals_for_missing_deleted_and_empty(room, alice, bob):
    live, gone = await post(room, alice, "viva", "apagada")
    await sync_to_async(message_delete)(room=room, message_id=gone, actor=alice)
    other = await sync_to_async(make_room)(admins=[alice], name="Outra")
    (foreign,) = await post(other, alice, "lá")
    author = await member(room, alice, ignore=NO_PRESENCE)
    reader = await member(room, bob, ignore=NO_PRESENCE)
    revisions_before = await MessageRevision.objects.acount()

    for message_id in (gone, foreign, foreign + 1000):
        await author.send_json_to({"type": "chat.edit", "message_id": message_id, "message": "x"})
        await assert_error(author, "message_not_found")
    for text in ("", "   \n"):
        await author.send_json_to({"type": "chat.edit", "message_id": live, "message": text})
        await assert_error(author, "empty_message")
    await author.send_json_to({"type": "chat.edit", "message_id": live, "message": "x" * 4001})
    await assert_error(author, "message_too_long")
    await author.send_json_to({"type": "chat.edit", "message_id": "1", "message": "x"})
    await assert_error(author, "invalid_frame")

    assert await reader.receive_nothing(QUIET)
    assert (await Message.objects.aget(pk=live)).text == "viva"
    assert (await Message.objects.aget(pk=gone)).text == ""
    assert await MessageRevision.objects.acount() == revisions_before
    await close_all(author, reader)


async def test_edit_over_rest(room, alice, bob, outsider):
    (message_id,) = await post(room, alice, "antes")
    reader = await member(room, bob, ignore=NO_PRESENCE)
    url = f"/api/chat/rooms/{room.pk}/messages/{message_id}/"

    response = await rest(alice, "patch", url, {"message": "depois"})
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["message"], body["deleted"]) == (message_id, "depois", False)
    assert body["edited_at"].endswith("Z")
    frame = await reader.receive_json_from()
    assert {**frame, "reactions": []} == {**body, "type": "chat.message.updated"}
    revision = await MessageRevision.objects.select_related("actor").aget()
    assert (revision.action, revision.previous_text, revision.actor) == ("edit", "antes", alice)

    refused = await rest(bob, "patch", url, {"message": "do bob"})
    assert (refused.status_code, refused.json()["code"]) == (403, "not_allowed")
    assert (await rest(bob, "patch", url, {"message": "   "})).status_code == 400
    assert (await rest(outsider, "patch", url, {"message": "x"})).status_code == 404
    unknown = await rest(alice, "patch", f"{url[:-1]}0/", {"message": "x"})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "message_not_found")
    assert (await Message.objects.aget(pk=message_id)).text == "depois"
    assert await reader.receive_nothing(QUIET), "refused edits broadcast nothing"
    await reader.disconnect()


async def test_edit_over_rest_after_window_and_of_deleted(room, alice, settings):
    old, gone = await post(room, alice, "velha", "apagada")
    await sync_to_async(message_delete)(room=room, message_id=gone, actor=alice)
    settings.CHAT_EDIT_WINDOW_SECONDS = 0
    base = f"/api/chat/rooms/{room.pk}/messages/"

    expired = await rest(alice, "patch", f"{base}{old}/", {"message": "nova"})
    assert (expired.status_code, expired.json()["code"]) == (403, "edit_window_expired")
    deleted = await rest(alice, "patch", f"{base}{gone}/", {"message": "nova"})
    assert (deleted.status_code, deleted.json()["code"]) == (404, "message_not_found")


# --- delete -------------------------------------------------------------------------------


async def assert_tombstone(room, viewer, message_id: int, deleted_frame: dict) -> None:
    assert deleted_frame["type"] == "chat.message.deleted"
    assert deleted_frame["id"] == message_id
    assert deleted_frame["room"] == str(room.pk)
    assert deleted_frame["deleted_at"].endswith("Z")
    history = (await rest(viewer, "get", f"/api/chat/rooms/{room.pk}/messages/")).json()
    (tombstone,) = [m for m in history["results"] if m["id"] == message_id]
    assert tombstone["deleted"] is True
    assert tombstone["message"] == ""


@pytest.mark.parametrize(
    ("author_name", "actor_name"), [("bob", "bob"), ("alice", "alice"), ("bob", "alice")]
)
async def test_delete_by_author_or_room_admin(room, alice, bob, author_name, actor_name):
    people = {"alice": alice, "bob": bob}
    author, actor = people[author_name], people[actor_name]
    (message_id,) = await post(room, author, "segredo")
    alice_socket = await member(room, alice, ignore=NO_PRESENCE)
    bob_socket = await member(room, bob, ignore=NO_PRESENCE)
    sockets = {"alice": alice_socket, "bob": bob_socket}

    await sockets[actor_name].send_json_to({"type": "chat.delete", "message_id": message_id})

    frame = await alice_socket.receive_json_from()
    assert await bob_socket.receive_json_from() == frame
    assert set(frame) == {"type", "id", "room", "deleted_at", "change_seq"}, "a tombstone: no text"
    await assert_tombstone(room, bob, message_id, frame)
    revision = await MessageRevision.objects.select_related("actor").aget()
    assert revision.action == MessageRevision.Action.DELETE
    assert revision.previous_text == "segredo"
    assert revision.actor == actor
    stored = await Message.objects.aget(pk=message_id)
    assert (stored.text, stored.deleted_at is not None) == ("", True)
    await close_all(alice_socket, bob_socket)


async def test_delete_of_someone_elses_message_by_plain_member_is_not_allowed(room, alice, bob):
    (message_id,) = await post(room, alice, "da alice")
    plain = await member(room, bob, ignore=NO_PRESENCE)
    watcher = await member(room, alice, ignore=NO_PRESENCE)

    await plain.send_json_to({"type": "chat.delete", "message_id": message_id})
    await assert_error(plain, "not_allowed")
    assert await watcher.receive_nothing(QUIET)
    stored = await Message.objects.aget(pk=message_id)
    assert (stored.text, stored.deleted_at) == ("da alice", None)
    assert await MessageRevision.objects.acount() == 0
    await close_all(plain, watcher)


async def test_delete_twice_or_unknown_is_message_not_found(room, alice):
    (message_id,) = await post(room, alice, "uma vez")
    author = await member(room, alice, ignore=NO_PRESENCE)
    await author.send_json_to({"type": "chat.delete", "message_id": message_id})
    assert (await author.receive_json_from())["type"] == "chat.message.deleted"
    for target in (message_id, message_id + 1000):
        await author.send_json_to({"type": "chat.delete", "message_id": target})
        await assert_error(author, "message_not_found")
    assert await MessageRevision.objects.acount() == 1
    await author.disconnect()


async def test_delete_over_rest(room, alice, bob, outsider):
    alices, bobs = await post(room, alice, "da alice"), await post(room, bob, "do bob")
    (alices,), (bobs,) = alices, bobs
    watcher = await member(room, alice, ignore=NO_PRESENCE)
    base = f"/api/chat/rooms/{room.pk}/messages/"

    refused = await rest(bob, "delete", f"{base}{alices}/")
    assert (refused.status_code, refused.json()["code"]) == (403, "not_allowed")
    assert (await rest(outsider, "delete", f"{base}{alices}/")).status_code == 404
    assert await watcher.receive_nothing(QUIET)

    response = await rest(bob, "delete", f"{base}{bobs}/")
    assert response.status_code == 204
    await assert_tombstone(room, alice, bobs, await watcher.receive_json_from())

    response = await rest(alice, "delete", f"{base}{alices}/")  # own message, room admin
    assert response.status_code == 204
    await assert_tombstone(room, alice, alices, await watcher.receive_json_from())

    again = await rest(alice, "delete", f"{base}{bobs}/")
    assert (again.status_code, again.json()["code"]) == (404, "message_not_found")
    actions = [(r.action, r.previous_text, r.actor_id) async for r in MessageRevision.objects.all()]
    assert actions == [("delete", "do bob", bob.pk), ("delete", "da alice", alice.pk)]
    await watcher.disconnect()


async def test_delete_counts_against_the_rate_limit(room, alice, settings):
    settings.CHAT_RATE_LIMIT_PER_SECOND = 0.001
    settings.CHAT_RATE_LIMIT_BURST = 1
    ids = await post(room, alice, "um", "dois")
    author = await member(room, alice, ignore=NO_PRESENCE)
    await author.send_json_to({"type": "chat.delete", "message_id": ids[0]})
    assert (await author.receive_json_from())["type"] == "chat.message.deleted"
    await author.send_json_to({"type": "chat.edit", "message_id": ids[1], "message": "x"})
    await assert_error(author, "rate_limited")
    await author.disconnect()


# --- direct rooms -------------------------------------------------------------------------


def test_direct_room_created_once_and_found_from_either_side(alice, bob):
    response = api(alice).post("/api/chat/direct/", {"user_id": bob.pk}, format="json")
    assert response.status_code == 201
    room = response.json()
    assert room["type"] == "direct"
    assert sorted(m["id"] for m in room["members"]) == sorted([alice.pk, bob.pk])
    assert room["member_count"] == 2

    again = api(alice).post("/api/chat/direct/", {"user_id": bob.pk}, format="json")
    other_side = api(bob).post("/api/chat/direct/", {"user_id": alice.pk}, format="json")
    assert (again.status_code, again.json()["id"]) == (200, room["id"])
    assert (other_side.status_code, other_side.json()["id"]) == (200, room["id"])
    assert Room.objects.filter(type=Room.Type.DIRECT).count() == 1
    assert room["id"] in {r["id"] for r in api(bob).get("/api/chat/rooms/").json()}


def test_direct_room_concurrent_creation_from_both_sides_yields_one_room(alice, bob):
    """Two requests at once, one per side (two threads, two database connections)."""
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip(
            "the in-memory SQLite test database (shared cache) answers 'database table is "
            "locked' instead of waiting; run with DATABASE_URL=postgres://… or "
            "CHAT_TEST_DB_NAME=<file> (tests/e2e/test_team_chat_cluster.py races it on PostgreSQL)"
        )
    start = threading.Barrier(2)
    answers: dict[str, tuple[int, str]] = {}
    failures: list[BaseException] = []

    def open_direct(user, other) -> None:
        try:
            client = api(user)
            start.wait(timeout=5)
            response = client.post("/api/chat/direct/", {"user_id": other.pk}, format="json")
            answers[user.username] = (response.status_code, response.json().get("id"))
        except BaseException as error:  # reported below, with the answers
            failures.append(error)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=open_direct, args=(alice, bob)),
        threading.Thread(target=open_direct, args=(bob, alice)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not failures, failures
    assert set(answers) == {"alice", "bob"}, answers
    assert sorted(status for status, _ in answers.values()) == [200, 201], answers
    assert answers["alice"][1] == answers["bob"][1]
    assert Room.objects.filter(type=Room.Type.DIRECT).count() == 1
    assert Membership.objects.filter(room__type=Room.Type.DIRECT).count() == 2


def test_direct_room_with_self_or_unknown_user_is_refused(alice, outsider):
    to_self = api(alice).post("/api/chat/direct/", {"user_id": alice.pk}, format="json")
    assert to_self.status_code == 400
    unknown = api(alice).post("/api/chat/direct/", {"user_id": 999_999}, format="json")
    assert unknown.status_code == 404
    sleeper = make_user("sleeper", is_active=False)
    inactive = api(alice).post("/api/chat/direct/", {"user_id": sleeper.pk}, format="json")
    assert inactive.status_code == 404
    assert APIClient().post("/api/chat/direct/", {"user_id": outsider.pk}).status_code == 401
    assert not Room.objects.filter(type=Room.Type.DIRECT).exists()


async def test_direct_room_other_user_connects_and_a_third_is_not_a_member(alice, bob, outsider):
    response = await rest(alice, "post", "/api/chat/direct/", {"user_id": bob.pk})
    room = await Room.objects.aget(pk=response.json()["id"])

    bob_socket = await member(room, bob, ignore=NO_PRESENCE)
    alice_socket = await member(room, alice, ignore=NO_PRESENCE)
    await alice_socket.send_json_to({"message": "oi, bob"})
    assert (await bob_socket.receive_json_from())["message"] == "oi, bob"

    intruder = await open_socket(room_path(room), token=access_token(outsider))
    await assert_rejected(intruder, "not_a_member", 4403)
    await close_all(bob_socket, alice_socket)


# --- access pre-flight --------------------------------------------------------------------

UNKNOWN_ROOM = "6f1c5a4e-0000-4000-8000-000000000000"
ACCESS_CASES = {
    # case: (who, room, token kind, expected code or None when allowed)
    "member": ("bob", "room", "valid", None),
    "non-member": ("outsider", "room", "valid", ("not_a_member", 4403)),
    "unknown room": ("bob", UNKNOWN_ROOM, "valid", ("room_not_found", 4404)),
    "malformed room id": ("bob", "not-a-uuid", "valid", ("room_not_found", 4404)),
    "no token": (None, "room", "none", ("authentication_required", 4401)),
    "no token, unknown room": (None, UNKNOWN_ROOM, "none", ("authentication_required", 4401)),
    "expired token": ("bob", "room", "expired", ("token_expired", 4401)),
    "forged token": ("bob", "room", "forged", ("token_invalid", 4401)),
    "refresh token": ("bob", "room", "refresh", ("token_invalid", 4401)),
    "inactive user": ("sleeper", "room", "valid", ("user_inactive", 4401)),
    "inactive user, unknown room": ("sleeper", UNKNOWN_ROOM, "valid", ("user_inactive", 4401)),
}
TOKENS = {
    "valid": factories.access_token,
    "expired": factories.expired_access_token,
    "forged": factories.token_signed_with_other_key,
    "refresh": factories.refresh_token,
}


@pytest.mark.parametrize("case", list(ACCESS_CASES))
async def test_access_preflight_answers_what_the_socket_answers(room, bob, outsider, case):
    who, room_ref, token_kind, expected = ACCESS_CASES[case]
    people = {"bob": bob, "outsider": outsider}
    if who == "sleeper":
        people["sleeper"] = await sync_to_async(make_user)("sleeper", is_active=False)
        await Membership.objects.acreate(room=room, user=people["sleeper"])
    room_id = str(room.pk) if room_ref == "room" else room_ref
    token = None if token_kind == "none" else TOKENS[token_kind](people[who])

    def preflight():
        client = APIClient()
        if token is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client.get(f"/api/chat/rooms/{room_id}/access/")

    response = await sync_to_async(preflight)()
    assert response.status_code == 200, "pre-flight answers, it does not refuse"
    body = response.json()
    socket = await open_socket(f"/ws/chat/{room_id}/", bearer=token)

    if expected is None:
        assert body == {"allowed": True}
        frame = await socket.receive_json_from()
        assert frame["type"] == "connection.established"
        await socket.disconnect()
        return
    code, close_code = expected
    assert body["allowed"] is False
    assert (body["code"], body["close_code"]) == (code, close_code)
    assert body["detail"]
    seen = await assert_rejected(socket, body["code"], body["close_code"])
    assert seen["detail"] == body["detail"]


# --- admin: the audit trail ---------------------------------------------------------------


@pytest.fixture
def superuser(db):
    return make_user("root", is_staff=True, is_superuser=True)


def test_admin_message_revisions_are_listed_and_read_only(room, alice, bob, superuser):
    message = Message.objects.create(room=room, author=alice, text="primeira versão")
    message_edit(room=room, message_id=message.pk, editor=alice, text="segunda versão")
    message_delete(room=room, message_id=message.pk, actor=alice)
    client = Client()
    client.force_login(superuser)

    listing = client.get("/admin/chat/messagerevision/")
    assert listing.status_code == 200
    page = listing.content.decode()
    assert "2 message revisions" in page
    revisions = list(MessageRevision.objects.order_by("id"))
    for revision in revisions:
        assert f"/admin/chat/messagerevision/{revision.pk}/change/" in page
    assert [(r.action, r.previous_text) for r in revisions] == [
        ("edit", "primeira versão"),
        ("delete", "segunda versão"),
    ]

    detail = client.get(f"/admin/chat/messagerevision/{revisions[0].pk}/change/")
    assert detail.status_code == 200
    assert "primeira versão" in detail.content.decode()
    message_page = client.get(f"/admin/chat/message/{message.pk}/change/")
    assert message_page.status_code == 200
    assert "segunda versão" in message_page.content.decode(), "revisions inline on the message"

    assert client.get("/admin/chat/messagerevision/add/").status_code == 403
    assert client.post("/admin/chat/messagerevision/add/", {}).status_code == 403
    changed = client.post(
        f"/admin/chat/messagerevision/{revisions[0].pk}/change/",
        {"previous_text": "reescrita", "action": "edit"},
    )
    assert changed.status_code == 403
    revisions[0].refresh_from_db()
    assert revisions[0].previous_text == "primeira versão"


def test_admin_revisions_are_not_for_plain_users(alice):
    client = Client()
    client.force_login(alice)
    response = client.get("/admin/chat/messagerevision/")
    assert response.status_code == 302  # to the admin login page


async def test_typing_flipping_true_and_false_in_a_loop_is_throttled(room, alice, bob):
    """A client alternating true/false is relayed a few times, not once per frame."""
    typist = await joined(room_path(room), token=factories.access_token(alice))
    watcher = await joined(room_path(room), token=factories.access_token(bob), ignore=())
    await watcher.receive_nothing(timeout=0.2)  # alice's presence, if any, is drained below
    for _ in range(20):
        await typist.send_json_to({"type": "typing", "is_typing": True})
        await typist.send_json_to({"type": "typing", "is_typing": False})
    relayed = 0
    while not await watcher.receive_nothing(timeout=0.3):
        frame = await watcher.receive_json_from()
        relayed += frame["type"] == "typing"
    assert 0 < relayed <= 6, relayed
    await typist.disconnect()
    await watcher.disconnect()


def test_admin_cannot_delete_audit_revisions(room, alice, superuser):
    message = Message.objects.create(room=room, author=alice, text="original")
    message_edit(room=room, message_id=message.pk, editor=alice, text="editada")
    revision = MessageRevision.objects.get()
    client = Client()
    client.force_login(superuser)
    assert client.post(f"/admin/chat/messagerevision/{revision.pk}/delete/").status_code == 403
    assert MessageRevision.objects.filter(pk=revision.pk).exists()


def test_admin_cannot_rewrite_or_erase_a_message_around_its_audit_trail(room, alice, superuser):
    """Edits and deletes go through the services, which keep revisions; the admin only reads."""
    message = Message.objects.create(room=room, author=alice, text="original")
    message_edit(room=room, message_id=message.pk, editor=alice, text="editada")
    client = Client()
    client.force_login(superuser)

    client.post(
        f"/admin/chat/message/{message.pk}/change/",
        {"room": room.pk, "author": alice.pk, "text": "reescrita sem rastro"},
    )
    assert client.post(f"/admin/chat/message/{message.pk}/delete/").status_code == 403
    message.refresh_from_db()
    assert message.text == "editada"
    assert MessageRevision.objects.filter(message=message).count() == 1
