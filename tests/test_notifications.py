"""Mentions and notifications (docs/protocol.md, "Mentions and notifications"): resolved when a
message is stored, a feed per user, a frame on every socket of the user, e-mail digests."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from chat.domain import services
from chat.domain.models import Membership, Message, Notification, Room
from tests.factories import access_token, make_room, make_user
from tests.test_team_chat import api, rest
from tests.ws import joined, room_path

pytestmark = pytest.mark.django_db(transaction=True)

QUIET = 0.2


def post(room, author, text: str, **extra) -> Message:
    return services.message_create(room=room, author=author, text=text, **extra).message


def notified(message) -> dict[str, str]:
    rows = Notification.objects.filter(message=message).select_related("user")
    return {n.user.username: n.kind for n in rows}


@pytest.fixture
def carla(room):
    user = make_user("carla")
    Membership.objects.create(room=room, user=user)
    return user


# --- mentions -----------------------------------------------------------------------------


def test_a_mention_of_a_member_is_stored_and_notifies_them_only(room, alice, bob, outsider):
    message = post(room, alice, "@bob olha isto, e @outsider também; @ninguém")

    assert message.mentions == [bob.pk], "a non-member or unknown name is no mention"
    assert notified(message) == {"bob": "mention"}
    body = api(bob).get(f"/api/chat/rooms/{room.pk}/messages/").json()["results"][-1]
    assert body["mentions"] == [bob.pk]


@pytest.mark.parametrize(
    ("text", "mentioned"),
    [
        ("oi @bob.", ["bob"]),
        ("(@bob)", ["bob"]),
        ("bob@example.com não é menção", []),
        ("@alice é a autora", []),
        ("@BOB", []),  # usernames are case-sensitive, as logins are
    ],
)
def test_what_counts_as_a_mention(room, alice, bob, text, mentioned):
    message = post(room, alice, text)
    users = {alice.pk: "alice", bob.pk: "bob"}
    assert [users[user_id] for user_id in message.mentions] == mentioned


def test_at_all_mentions_every_member_when_a_room_admin_writes_it(room, alice, bob, carla):
    by_admin = post(room, alice, "@all reunião às 15h")
    by_member = post(room, bob, "@all alguém?")

    assert sorted(by_admin.mentions) == sorted([bob.pk, carla.pk])
    assert by_member.mentions == [], "@all is the room admins' to use"


async def test_at_here_mentions_the_members_online_now(room, alice, bob, carla):
    socket = await joined(room_path(room), token=access_token(bob))

    result = await rest(alice, "post", f"/api/chat/rooms/{room.pk}/messages/", {"message": "@here"})

    assert result.json()["mentions"] == [bob.pk], "carla has no socket open"
    await socket.disconnect()


async def test_a_mentioned_user_gets_a_notification_frame_in_whatever_room_they_have_open(
    room, alice, bob
):
    elsewhere = await Room.objects.acreate(name="Outra sala")
    await Membership.objects.acreate(room=elsewhere, user=bob)
    in_other_room = await joined(room_path(elsewhere), token=access_token(bob))
    author_socket = await joined(room_path(room), token=access_token(alice))

    await author_socket.send_json_to({"type": "chat.message", "message": "@bob pode ver?"})

    frame = await in_other_room.receive_json_from()
    assert frame["type"] == "notification"
    notification = frame["notification"]
    assert (notification["kind"], notification["read"]) == ("mention", False)
    assert notification["room"] == {"id": str(room.pk), "name": room.name}
    assert notification["message"]["message"] == "@bob pode ver?"
    assert await in_other_room.receive_nothing(QUIET), "the message itself stays in its room"
    assert (await author_socket.receive_json_from())["type"] == "chat.message"
    assert await author_socket.receive_nothing(QUIET), "the author is not notified"
    for socket in (in_other_room, author_socket):
        await socket.disconnect()


def test_an_edit_that_adds_a_mention_notifies_only_the_new_one(room, alice, bob, carla):
    message = post(room, alice, "@bob veja")
    services.message_edit(room=room, message_id=message.pk, editor=alice, text="@bob @carla veja")
    services.message_edit(room=room, message_id=message.pk, editor=alice, text="@carla veja!")

    assert notified(message) == {"bob": "mention", "carla": "mention"}
    assert Message.objects.get(pk=message.pk).mentions == [carla.pk]


def test_a_reply_edited_to_mention_its_author_counts_as_a_mention(room, alice, bob):
    root = post(room, alice, "pergunta")
    reply = post(room, bob, "resposta", reply_to=root.pk)
    services.message_edit(room=room, message_id=reply.pk, editor=bob, text="@alice resposta")

    assert notified(reply) == {"alice": "mention"}
    (item,) = [r for r in api(alice).get("/api/chat/rooms/").json() if r["id"] == str(room.pk)]
    assert item["mention_count"] == 1
    assert Notification.objects.filter(user=alice).count() == 1, "told once, not twice"


def test_replies_notify_the_author_replied_to_and_the_threads_root(room, alice, bob, carla):
    root = post(room, alice, "pergunta")
    first = post(room, bob, "resposta", reply_to=root.pk)
    second = post(room, carla, "réplica", reply_to=first.pk)
    own = post(room, alice, "obrigada", reply_to=root.pk)

    assert notified(first) == {"alice": "reply"}
    assert notified(second) == {"alice": "reply", "bob": "reply"}
    assert notified(own) == {}, "nobody is notified of their own reply"


def test_a_direct_message_notifies_the_other_member(alice, bob):
    direct, _ = services.direct_room_get_or_create(user=alice, other=bob)
    message = post(direct, alice, "oi, @bob")
    assert notified(message) == {"bob": "mention"}, "one notification, the first reason"
    assert notified(post(direct, bob, "oi")) == {"alice": "direct"}


# --- the feed and the room list -------------------------------------------------------------


def test_the_feed_is_newest_first_paged_and_read_up_to_an_id(room, alice, bob):
    for n in range(5):
        post(room, alice, f"@bob {n}")

    first = api(bob).get("/api/chat/notifications/", {"limit": 3}).json()
    rest_page = (
        api(bob).get("/api/chat/notifications/", {"before": first["results"][-1]["id"]}).json()
    )
    marked = api(bob).post(
        "/api/chat/notifications/read/", {"up_to": first["results"][1]["id"]}, format="json"
    )

    texts = [n["message"]["message"] for n in first["results"] + rest_page["results"]]
    assert texts == ["@bob 4", "@bob 3", "@bob 2", "@bob 1", "@bob 0"]
    assert first["has_more"] and not rest_page["has_more"]
    assert first["unread_count"] == 5
    assert marked.json() == {"marked": 4, "unread_count": 1}
    feed = api(bob).get("/api/chat/notifications/").json()["results"]
    assert [n["read"] for n in feed] == [False, True, True, True, True]
    assert api(alice).get("/api/chat/notifications/").json()["results"] == []


def test_the_room_list_counts_unread_mentions_next_to_unread_messages(room, alice, bob):
    post(room, alice, "@bob um")
    post(room, alice, "sem menção")
    last = post(room, alice, "@bob dois")

    def counts():
        (item,) = [r for r in api(bob).get("/api/chat/rooms/").json() if r["id"] == str(room.pk)]
        return item["unread_count"], item["mention_count"]

    assert counts() == (3, 2)
    services.read_marker_set(room=room, user=bob, message_id=last.pk)
    assert counts() == (0, 0)


# --- e-mail digests -----------------------------------------------------------------------


def age_notifications(minutes: int) -> None:
    Notification.objects.update(created_at=timezone.now() - timedelta(minutes=minutes))


def send_digests() -> str:
    out = StringIO()
    call_command("send_chat_digests", stdout=out)
    return out.getvalue()


def test_a_digest_mails_unread_notifications_older_than_the_setting_once(room, alice, bob):
    bob.email = "bob@example.com"
    bob.save()
    post(room, alice, "@bob antiga")
    age_notifications(20)
    post(room, alice, "@bob recente")

    assert "1 digest(s) sent" in send_digests()
    assert "0 digest(s) sent" in send_digests(), "never twice for the same notification"

    (sent,) = mail.outbox
    assert sent.to == ["bob@example.com"]
    assert "antiga" in sent.body and "recente" not in sent.body
    assert "/api/chat/notifications/unsubscribe/" in sent.body


def test_read_notifications_and_unsubscribed_users_get_no_digest(room, alice, bob, carla):
    for user in (bob, carla):
        user.email = f"{user.username}@example.com"
        user.save()
    post(room, alice, "@bob @carla olhem")
    age_notifications(20)
    Notification.objects.filter(user=bob).update(read_at=timezone.now())
    response = api(carla).patch(
        "/api/chat/notifications/settings/", {"email_digests": False}, format="json"
    )

    assert response.json() == {"email_digests": False}
    assert "0 digest(s) sent" in send_digests()
    assert mail.outbox == []


def test_the_unsubscribe_link_turns_digests_off_without_a_login(room, alice, bob, client):
    bob.email = "bob@example.com"
    bob.save()
    post(room, alice, "@bob")
    age_notifications(20)
    send_digests()
    link = next(
        word for word in mail.outbox[0].body.split() if "/notifications/unsubscribe/" in word
    )

    response = client.get(link.removeprefix("http://localhost:8000"))
    forged = client.get("/api/chat/notifications/unsubscribe/not-a-token/")

    assert response.status_code == 200 and response.json() == {"email_digests": False}
    assert forged.status_code == 404
    assert api(bob).get("/api/chat/notifications/settings/").json() == {"email_digests": False}


def test_mentions_cannot_reach_users_outside_the_room(room, alice, outsider):
    make_room(members=[outsider])  # a room of theirs, which alice is not in

    post(room, alice, "@outsider spam " * 20)

    assert not Notification.objects.filter(user=outsider).exists()
    assert api(outsider).get("/api/chat/notifications/").json()["unread_count"] == 0


async def test_a_notification_reaches_only_its_users_sockets_in_a_shared_shard(
    room, alice, bob, carla, monkeypatch
):
    """Users share a group per shard (chat.realtime.delivery.USER_SHARDS): with one shard,
    every socket hears the shard's events, and only the notified user's sockets show them."""
    from chat.realtime import delivery

    monkeypatch.setattr(delivery, "USER_SHARDS", 1)
    elsewhere = await Room.objects.acreate(name="Outra sala")
    for user in (bob, carla):
        await Membership.objects.acreate(room=elsewhere, user=user)
    bobs = await joined(room_path(elsewhere), token=access_token(bob))
    carlas = await joined(room_path(elsewhere), token=access_token(carla))

    await rest(alice, "post", f"/api/chat/rooms/{room.pk}/messages/", {"message": "@bob"})

    assert (await bobs.receive_json_from())["type"] == "notification"
    assert await carlas.receive_nothing(QUIET)
    for socket in (bobs, carlas):
        await socket.disconnect()
