"""One path for every change: REST, the shell and the socket store and announce alike, in the
room's commit order (docs/protocol.md, "Changes from outside the socket")."""

from __future__ import annotations

import asyncio
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command

from chat.domain.models import Message, MessageRevision
from tests.factories import access_token, make_user
from tests.test_team_chat import api, rest
from tests.ws import joined, room_path

pytestmark = pytest.mark.django_db(transaction=True)

QUIET = 0.2


async def watching(room, user):
    return await joined(room_path(room), token=access_token(user))


def messages_path(room) -> str:
    return f"/api/chat/rooms/{room.pk}/messages/"


# --- posting over REST --------------------------------------------------------------------


async def test_message_post_over_rest_is_stored_and_reaches_every_socket(room, alice, bob):
    watchers = [await watching(room, alice), await watching(room, bob)]

    response = await rest(alice, "post", messages_path(room), {"message": "pelo REST"})

    assert response.status_code == 201
    body = response.json()
    assert body["type"] == "chat.message" and body["message"] == "pelo REST"
    assert body["user"] == {"id": alice.pk, "username": "alice"}
    for watcher in watchers:
        assert await watcher.receive_json_from() == body, "the socket's frame is the REST body"
    assert await Message.objects.filter(pk=body["id"], text="pelo REST").aexists()
    for watcher in watchers:
        await watcher.disconnect()


async def test_message_post_retried_with_its_client_id_is_200_and_not_announced_again(room, bob):
    watcher = await watching(room, bob)
    post = {"message": "uma vez", "client_id": "c-1"}

    first = await rest(bob, "post", messages_path(room), post)
    again = await rest(bob, "post", messages_path(room), post)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert (await watcher.receive_json_from())["id"] == first.json()["id"]
    assert await watcher.receive_nothing(QUIET), "a retry is not announced twice"
    assert await Message.objects.filter(client_id="c-1").acount() == 1
    await watcher.disconnect()


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"message": "   "}, 400, "empty_message"),
        ({"message": "x" * 4001}, 400, "message_too_long"),
        ({}, 400, "invalid_request"),
        ({"message": "ok", "client_id": ""}, 400, "invalid_request"),
    ],
    ids=["blank", "too-long", "no-message", "empty-client-id"],
)
def test_message_post_refusals_use_the_sockets_codes(room, bob, payload, status, code):
    response = api(bob).post(messages_path(room), payload, format="json")

    assert (response.status_code, response.json()["code"]) == (status, code)
    assert response.json()["detail"]
    assert not Message.objects.exists()


def test_message_post_by_a_non_member_is_404_and_stores_nothing(room, outsider):
    response = api(outsider).post(messages_path(room), {"message": "oi"}, format="json")

    assert (response.status_code, response.json()["code"]) == (404, "room_not_found")
    assert not Message.objects.exists()


# --- posting from the shell ---------------------------------------------------------------


def chat_post(*args, **options) -> str:
    out = StringIO()
    call_command("chat_post", *args, stdout=out, stderr=out, **options)
    return out.getvalue()


async def test_chat_post_command_stores_and_announces_like_a_socket(room, alice, bob):
    watcher = await watching(room, alice)

    output = await sync_to_async(chat_post)(str(room.pk), "bob", "do cron")

    frame = await watcher.receive_json_from()
    assert (frame["type"], frame["message"], frame["user"]["username"]) == (
        "chat.message",
        "do cron",
        "bob",
    )
    assert f"posted message {frame['id']}" in output
    by_name = await sync_to_async(chat_post)(room.name, "alice", "pelo nome")
    assert (await watcher.receive_json_from())["message"] == "pelo nome"
    assert "posted message" in by_name
    await watcher.disconnect()


def test_chat_post_command_refuses_what_a_socket_would(room, outsider):
    with pytest.raises(CommandError, match="not_a_member"):
        chat_post(str(room.pk), "outsider", "oi")
    with pytest.raises(CommandError, match="empty_message"):
        chat_post(str(room.pk), "bob", "  ")
    with pytest.raises(CommandError, match="no room"):
        chat_post("no such room", "bob", "oi")
    with pytest.raises(CommandError, match="no active user"):
        chat_post(str(room.pk), "nobody", "oi")
    assert not Message.objects.exists()


# --- room and membership changes are announced --------------------------------------------


async def test_room_rename_by_an_admin_reaches_every_socket(room, alice, bob):
    watcher = await watching(room, bob)

    response = await rest(alice, "patch", f"/api/chat/rooms/{room.pk}/", {"name": "Novo nome"})

    assert response.status_code == 200 and response.json()["name"] == "Novo nome"
    assert await watcher.receive_json_from() == {
        "type": "room.updated",
        "room": {"id": str(room.pk), "name": "Novo nome", "seen_by": True, "read_only": False},
    }
    await watcher.disconnect()


def test_room_rename_by_a_member_who_is_not_admin_is_403(room, bob):
    response = api(bob).patch(f"/api/chat/rooms/{room.pk}/", {"name": "Meu"}, format="json")

    assert (response.status_code, response.json()["code"]) == (403, "not_room_admin")
    room.refresh_from_db()
    assert room.name == "Chat - Gerência"


async def test_member_added_is_announced_to_the_room(room, alice, bob):
    carol = await sync_to_async(make_user)("carol")
    watcher = await watching(room, bob)

    response = await rest(
        alice, "post", f"/api/chat/rooms/{room.pk}/members/", {"user_id": carol.pk}
    )

    assert response.status_code == 201
    assert await watcher.receive_json_from() == {
        "type": "member.added",
        "room": str(room.pk),
        "user": {"id": carol.pk, "username": "carol"},
        "role": "member",
    }
    await watcher.disconnect()


# --- the room's order holds for every origin ----------------------------------------------


async def test_concurrent_edits_from_socket_and_rest_reach_members_in_commit_order(room, alice):
    """The socket and REST edit one message at once; every member sees the edits in the order
    they committed (the audit trail's order), the last one being what the database holds."""
    editor = await watching(room, alice)
    watcher = await joined(room_path(room), token=access_token(alice))
    await editor.send_json_to({"type": "chat.message", "message": "v0"})
    message_id = (await editor.receive_json_from())["id"]
    assert (await watcher.receive_json_from())["id"] == message_id
    edits = 12

    async def edit_by_socket():
        for n in range(edits):
            await editor.send_json_to(
                {"type": "chat.edit", "message_id": message_id, "message": f"ws-{n}"}
            )
            await asyncio.sleep(0)

    def edit_by_rest(worker: int):
        # A thread of its own, as CHAT_HTTP_THREADS gives each request under a real server.
        path = f"{messages_path(room)}{message_id}/"
        client = api(alice)
        for n in range(edits // 2):
            response = client.patch(path, {"message": f"rest{worker}-{n}"}, format="json")
            assert response.status_code == 200

    await asyncio.gather(
        edit_by_socket(),
        *(sync_to_async(edit_by_rest, thread_sensitive=False)(worker) for worker in (1, 2)),
    )

    def seen_by(socket):
        async def collect():
            texts = []
            while len(texts) < 2 * edits:
                frame = await socket.receive_json_from(timeout=5)
                assert frame["type"] == "chat.message.updated", frame
                texts.append(frame["message"])
            return texts

        return collect()

    seen = [await seen_by(editor), await seen_by(watcher)]
    revisions = [
        text
        async for text in MessageRevision.objects.filter(message_id=message_id)
        .order_by("id")
        .values_list("previous_text", flat=True)
    ]
    final = (await Message.objects.aget(pk=message_id)).text
    committed = [*revisions[1:], final]  # each edit's text is the next revision's "before"
    assert seen == [committed, committed]
    assert {t.split("-")[0] for t in committed} == {"ws", "rest1", "rest2"}, "all took part"
    await editor.disconnect()
    await watcher.disconnect()


def test_rest_writes_spend_a_per_user_budget_and_reads_do_not(room, bob, settings):
    """REST is no way around the socket's message limits (CHAT_REST_WRITE_RATE)."""
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    rates = {**api_settings.DEFAULT_THROTTLE_RATES, "chat_writes": "3/min"}
    original = SimpleRateThrottle.THROTTLE_RATES
    SimpleRateThrottle.THROTTLE_RATES = rates
    try:
        client = api(bob)
        posts = [
            client.post(messages_path(room), {"message": f"m{n}"}, format="json") for n in range(4)
        ]
        reads = [client.get(messages_path(room)) for _ in range(5)]
    finally:
        SimpleRateThrottle.THROTTLE_RATES = original

    assert [p.status_code for p in posts] == [201, 201, 201, 429]
    assert posts[-1].json()["code"] == "rate_limited" and int(posts[-1]["Retry-After"]) > 0
    assert {r.status_code for r in reads} == {200}
    assert Message.objects.count() == 3


async def test_an_edit_stored_but_not_announced_closes_the_editors_socket_with_1013(
    room, alice, monkeypatch
):
    """The channel layer fails after the edit committed: the editor is told to reconnect and
    recover (members recover the edit with `after=` too); the edit itself is kept."""
    from channels.layers import get_channel_layer

    from tests.ws import assert_rejected

    editor = await watching(room, alice)
    await editor.send_json_to({"type": "chat.message", "message": "v0"})
    message_id = (await editor.receive_json_from())["id"]

    async def layer_down(*args, **kwargs):
        raise OSError("the channel layer is unreachable")

    monkeypatch.setattr(type(get_channel_layer()), "group_send", layer_down)
    await editor.send_json_to({"type": "chat.edit", "message_id": message_id, "message": "v1"})

    await assert_rejected(editor, "service_unavailable", 1013)
    assert (await Message.objects.aget(pk=message_id)).text == "v1"
