"""Service accounts and API keys (issue 18): made once and stored hashed, `Authorization:
Api-Key` on REST and at the WebSocket handshake, scoped to the rooms granted, revoked with
its sockets closed at once (`api_key_revoked` / 4401), and bots' messages marked `is_bot`."""

from __future__ import annotations

import hashlib
import io
import logging
import re
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from apikeys.keys import key_create, key_revoke, service_account_get_or_create
from apikeys.models import ApiKey
from chat.domain.access import rooms_for_connections
from chat.domain.models import Membership
from tests.factories import access_token, make_room, make_user
from tests.ws import ChatCommunicator, application, assert_rejected, joined, room_path

pytestmark = pytest.mark.django_db(transaction=True)


# --- helpers ------------------------------------------------------------------------------


@pytest.fixture
def bot(db):
    return service_account_get_or_create("crm-bot")


@pytest.fixture
def other_room(alice, bot):
    """A room the bot is a member of, that its key was not granted."""
    return make_room(admins=[alice], members=[bot], name="Outra sala")


@pytest.fixture
def bot_key(room, bot, other_room) -> str:
    """The text of a key of `bot` granted `room` only."""
    return key_create(user=bot, rooms=[room], name="integração")[1]


def key_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


async def key_socket(room_or_path, key: str) -> ChatCommunicator:
    path = room_or_path if isinstance(room_or_path, str) else room_path(room_or_path)
    communicator = ChatCommunicator(
        application, path, headers=[(b"authorization", f"Api-Key {key}".encode())]
    )
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def key_joined(room, key: str) -> ChatCommunicator:
    communicator = await key_socket(room, key)
    established = await communicator.receive_json_from()
    assert established["type"] == "connection.established", established
    return communicator


# --- making keys: shown once, stored hashed -----------------------------------------------


def test_a_key_is_stored_only_as_the_hash_of_its_secret(room, bot):
    key, text = key_create(user=bot, rooms=[room])
    prefix, _, secret = text.partition(".")
    assert key.prefix == prefix and len(secret) >= 40
    assert re.fullmatch("[0-9a-f]{10}", prefix), "never a leading '-' (a command's option)"
    stored = ApiKey.objects.filter(pk=key.pk).values().get()
    assert secret not in str(stored) and text not in str(stored)
    assert stored["digest"] == hashlib.sha256(secret.encode()).hexdigest()
    assert Membership.objects.filter(room=room, user=bot).exists(), "the bot joins its rooms"


def test_the_command_makes_a_bot_that_cannot_log_in_and_prints_its_key_once(room, caplog):
    caplog.set_level(logging.DEBUG)
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_key", "relatorios", "--rooms", str(room.pk), stdout=out, stderr=err)
    text = out.getvalue().strip()
    bot = get_user_model().objects.get(username="relatorios")
    assert bot.is_bot and not bot.has_usable_password()
    assert ApiKey.objects.get(user=bot).prefix == text.partition(".")[0]
    assert "shown once" in err.getvalue() and text not in err.getvalue()
    assert text.partition(".")[2] not in caplog.text, "a key is never logged"
    login = APIClient().post("/api/auth/token/", {"username": "relatorios", "password": ""})
    assert login.status_code in (400, 401)
    assert key_client(text).get(f"/api/chat/rooms/{room.pk}/").status_code == 200


def test_the_command_refuses_people_and_unknown_rooms(room, alice):
    with pytest.raises(CommandError, match="a person"):
        call_command("create_api_key", "alice", "--rooms", str(room.pk), stdout=io.StringIO())
    with pytest.raises(CommandError, match="no such room"):
        call_command("create_api_key", "bot2", "--rooms", "00000000-0000-0000-0000-000000000000")
    with pytest.raises(CommandError, match="UUIDs"):
        call_command("create_api_key", "bot2", "--rooms", "vendas")
    assert not ApiKey.objects.exists()


def test_revoke_command_takes_the_prefix_or_the_key(room, bot_key):
    prefix = bot_key.partition(".")[0]
    out = io.StringIO()
    call_command("revoke_api_key", prefix, stdout=out)
    assert "revoked" in out.getvalue()
    assert ApiKey.objects.get(prefix=prefix).revoked_at is not None
    call_command("revoke_api_key", bot_key, stdout=out)
    assert "revoked already" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("revoke_api_key", "nope")


# --- REST ---------------------------------------------------------------------------------


def test_rest_with_a_key_reaches_its_rooms_only(room, other_room, bot_key):
    client = key_client(bot_key)
    assert [r["id"] for r in client.get("/api/chat/rooms/").json()] == [str(room.pk)]
    assert client.get(f"/api/chat/rooms/{room.pk}/messages/").status_code == 200
    for path in ("", "messages/", "changes/?after=0", "presence/"):
        refused = client.get(f"/api/chat/rooms/{other_room.pk}/{path}")
        assert refused.status_code == 404, path
        assert refused.json()["code"] == "room_not_found"
    posted = client.post(f"/api/chat/rooms/{other_room.pk}/messages/", {"message": "x"})
    assert posted.status_code == 404
    access = client.get(f"/api/chat/rooms/{other_room.pk}/access/").json()
    assert access == {
        "allowed": False,
        "code": "not_a_member",
        "close_code": 4403,
        "detail": access["detail"],
    }


def test_history_page_with_messages_of_a_room_out_of_scope_is_404(other_room, bot_key, alice):
    """The page's own query checks membership; the key's scope is checked before it."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(alice)}")
    client.post(f"/api/chat/rooms/{other_room.pk}/messages/", {"message": "segredo"})
    response = key_client(bot_key).get(f"/api/chat/rooms/{other_room.pk}/messages/")
    assert response.status_code == 404


def test_a_bots_message_carries_is_bot_and_peoples_do_not(room, bot, bot_key, alice):
    posted = key_client(bot_key).post(f"/api/chat/rooms/{room.pk}/messages/", {"message": "ok"})
    assert posted.status_code == 201
    assert posted.json()["user"] == {"id": bot.pk, "username": "crm-bot", "is_bot": True}
    people = APIClient()
    people.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(alice)}")
    people.post(f"/api/chat/rooms/{room.pk}/messages/", {"message": "oi"})
    history = people.get(f"/api/chat/rooms/{room.pk}/messages/").json()["results"]
    assert [m["user"] for m in history] == [
        {"id": bot.pk, "username": "crm-bot", "is_bot": True},
        {"id": alice.pk, "username": "alice"},
    ]
    changes = people.get(f"/api/chat/rooms/{room.pk}/messages/?after=0").json()["results"]
    assert changes[0]["user"]["is_bot"] is True


def test_search_and_notifications_with_a_key_stay_in_its_rooms(room, other_room, bot, bot_key):
    alice_client = APIClient()
    alice_client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(room.created_by)}")
    for target in (room, other_room):
        alice_client.post(
            f"/api/chat/rooms/{target.pk}/messages/", {"message": "@crm-bot orçamento"}
        )
    found = key_client(bot_key).get("/api/chat/search/?q=orçamento").json()["results"]
    assert [hit["room"]["id"] for hit in found] == [str(room.pk)]
    feed = key_client(bot_key).get("/api/chat/notifications/").json()
    assert [n["room"]["id"] for n in feed["results"]] == [str(room.pk)]
    assert feed["unread_count"] == 1


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Api-Key nope", "token_invalid"),
        ("Api-Key ", "token_invalid"),
        ("Api-Key abc.def", "token_invalid"),
        ("Api-Key " + "a." + "b" * 300, "token_invalid"),
    ],
)
def test_unknown_or_malformed_keys_are_401(room, header, code):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/chat/rooms/")
    assert response.status_code == 401
    assert response.json()["code"] == code


def test_a_key_with_a_wrong_secret_revoked_or_of_an_inactive_bot_is_401(room, bot, bot_key):
    prefix = bot_key.partition(".")[0]
    wrong = key_client(f"{prefix}.{'x' * 43}").get("/api/chat/rooms/")
    assert (wrong.status_code, wrong.json()["code"]) == (401, "token_invalid")

    get_user_model().objects.filter(pk=bot.pk).update(is_active=False)
    inactive = key_client(bot_key).get("/api/chat/rooms/")
    assert (inactive.status_code, inactive.json()["code"]) == (401, "user_inactive")

    key_revoke(ApiKey.objects.get(prefix=prefix))
    revoked = key_client(bot_key).get("/api/chat/rooms/")
    assert (revoked.status_code, revoked.json()["code"]) == (401, "api_key_revoked")


def test_last_used_at_is_written_at_most_once_a_minute(room, bot_key):
    prefix = bot_key.partition(".")[0]
    client = key_client(bot_key)
    client.get("/api/chat/rooms/")
    first = ApiKey.objects.get(prefix=prefix).last_used_at
    assert first is not None
    with CaptureQueriesContext(connection) as queries:
        client.get("/api/chat/rooms/")
    assert not [q for q in queries if q["sql"].startswith("UPDATE")]
    assert ApiKey.objects.get(prefix=prefix).last_used_at == first

    ApiKey.objects.filter(prefix=prefix).update(last_used_at=first - timedelta(minutes=2))
    client.get("/api/chat/rooms/")
    assert ApiKey.objects.get(prefix=prefix).last_used_at > first


def test_a_key_gets_no_ticket(room, bot_key):
    """The key's scope would not travel with a ticket; a bot sends its header itself."""
    response = key_client(bot_key).post("/api/chat/ws-ticket/")
    assert (response.status_code, response.json()["code"]) == (403, "not_allowed")


def test_the_schema_describes_the_api_key_scheme():
    schema = APIClient().get("/api/schema/?format=json").json()
    scheme = schema["components"]["securitySchemes"]["apiKey"]
    assert scheme == {**scheme, "type": "apiKey", "in": "header", "name": "Authorization"}
    assert {"apiKey": []} in schema["paths"]["/api/chat/rooms/"]["get"]["security"]


# --- the admin ----------------------------------------------------------------------------


def test_admin_makes_a_key_shown_once_and_revokes_keys(room, bot):
    client = Client()
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    made = client.post(
        "/admin/apikeys/apikey/add/",
        {"user": bot.pk, "name": "painel", "rooms": [str(room.pk)]},
        follow=True,
    )
    assert made.status_code == 200
    key = ApiKey.objects.get(name="painel")
    shown = [str(m) for m in made.context["messages"] if "shown this once" in str(m)]
    assert len(shown) == 1 and key.prefix in shown[0]
    text = shown[0].split(": ", 1)[1].split(" ")[0]
    assert key_client(text).get(f"/api/chat/rooms/{room.pk}/").status_code == 200
    assert key.prefix in client.get("/admin/apikeys/apikey/").content.decode()
    assert text not in client.get("/admin/apikeys/apikey/").content.decode(), "once"

    rotated = client.post(
        "/admin/apikeys/apikey/",
        {"action": "create_key_like", "_selected_action": [key.pk]},
        follow=True,
    )
    assert ApiKey.objects.filter(user=bot).count() == 2
    assert any("shown this once" in str(m) for m in rotated.context["messages"])
    client.post("/admin/apikeys/apikey/", {"action": "revoke_keys", "_selected_action": [key.pk]})
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    assert key_client(text).get("/api/chat/rooms/").json()["code"] == "api_key_revoked"


def test_a_person_cannot_be_given_a_key_in_the_admin(room, alice):
    client = Client()
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    response = client.post("/admin/apikeys/apikey/add/", {"user": alice.pk, "rooms": [room.pk]})
    assert response.status_code == 200  # the form again, with its error
    assert not ApiKey.objects.exists()


# --- the membership rule ------------------------------------------------------------------


def test_writes_with_a_key_stay_in_its_rooms_whatever_the_transport(room, other_room, bot):
    """The domain's own write check (chat.domain.access.writer_state), not only the views'."""
    from apikeys.keys import key_authenticate
    from chat.domain.access import is_member
    from chat.domain.refusals import NotAMember
    from chat.domain.services import message_create

    scoped = key_authenticate(key_create(user=bot, rooms=[room])[1]).user
    assert is_member(room_id=room.pk, user=scoped)
    assert not is_member(room_id=other_room.pk, user=scoped)
    assert is_member(room_id=other_room.pk, user=bot), "the account itself is a member"
    with pytest.raises(NotAMember):
        message_create(room=other_room, author=scoped, text="fora do escopo")
    assert message_create(room=room, author=scoped, text="dentro").created


def test_two_keys_of_one_bot_checked_together_keep_their_own_rooms(room, other_room, bot):
    from apikeys.keys import key_authenticate

    one = key_authenticate(key_create(user=bot, rooms=[room])[1]).user
    two = key_authenticate(key_create(user=bot, rooms=[other_room])[1]).user
    checked = rooms_for_connections(
        [(one, str(room.pk)), (one, str(other_room.pk)), (two, str(room.pk))]
    )
    assert [(r and r.pk, f and f.code) for r, f in checked] == [
        (room.pk, None),
        (None, "not_a_member"),
        (None, "not_a_member"),
    ]


# --- WebSocket ----------------------------------------------------------------------------


async def test_socket_with_a_key_joins_its_room_and_posts_as_a_bot(room, bot, bot_key, alice):
    watcher = await joined(room_path(room), token=access_token(alice))
    socket = await key_socket(room, bot_key)
    established = await socket.receive_json_from()
    assert established["user"] == {"id": bot.pk, "username": "crm-bot", "is_bot": True}

    await socket.send_json_to({"type": "chat.message", "message": "pedido 42 faturado"})
    received = await watcher.receive_json_from()
    assert received["user"] == {"id": bot.pk, "username": "crm-bot", "is_bot": True}
    assert (await socket.receive_json_from())["id"] == received["id"]
    await socket.disconnect()
    await watcher.disconnect()


async def test_socket_with_a_key_is_refused_elsewhere(room, other_room, bot_key):
    refused = await key_socket(other_room, bot_key)
    await assert_rejected(refused, "not_a_member", 4403)
    unknown = await key_socket("/ws/chat/00000000-0000-0000-0000-000000000000/", bot_key)
    await assert_rejected(unknown, "room_not_found", 4404)


@pytest.mark.parametrize("text", ["nope", "", "a.b"])
async def test_socket_with_a_bad_key_is_401(room, text, caplog):
    socket = await key_socket(room, text)
    await assert_rejected(socket, "token_invalid", 4401)


async def test_socket_with_a_revoked_key_is_refused(room, bot_key):
    await sync_to_async(key_revoke)(await ApiKey.objects.aget(prefix=bot_key.partition(".")[0]))
    socket = await key_socket(room, bot_key)
    await assert_rejected(socket, "api_key_revoked", 4401)


async def test_revoking_a_key_closes_its_sockets_at_once_and_no_others(room, bot, bot_key, alice):
    other_key = (await sync_to_async(key_create)(user=bot, rooms=[room]))[1]
    revoked = await key_joined(room, bot_key)
    kept = await key_joined(room, other_key)
    person = await joined(room_path(room), token=access_token(alice))

    key = await ApiKey.objects.aget(prefix=bot_key.partition(".")[0])
    assert await sync_to_async(key_revoke)(key)

    frame = await assert_rejected(revoked, "api_key_revoked", 4401)
    assert "revoked" in frame["detail"]
    assert await kept.receive_nothing(0.3)
    assert await person.receive_nothing(0.1)
    await kept.send_json_to({"type": "ping"})
    assert (await kept.receive_json_from())["type"] == "pong"
    await kept.disconnect()
    await person.disconnect()


async def test_a_key_revoked_where_no_event_reaches_closes_within_the_account_check(
    room, bot_key, settings
):
    """`update()` sends no event: as `manage.py revoke_api_key` on the in-memory layer."""
    settings.CHAT_ACCOUNT_CHECK_SECONDS = 0.2
    socket = await key_joined(room, bot_key)
    await ApiKey.objects.filter(prefix=bot_key.partition(".")[0]).aupdate(revoked_at=timezone.now())
    await assert_rejected(socket, "api_key_revoked", 4401)


async def test_a_bot_removed_from_a_granted_room_is_closed_as_any_member(room, bot, bot_key, alice):
    socket = await key_joined(room, bot_key)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(alice)}")
    response = await sync_to_async(client.delete)(f"/api/chat/rooms/{room.pk}/members/{bot.pk}/")
    assert response.status_code == 204
    await assert_rejected(socket, "removed_from_room", 4403)
