"""Notifications and reads at the edges: members who left, a failing mail server, the digest's
row locks, a coalesced read of a socket the server closed."""

from __future__ import annotations

import smtplib
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat.domain import notifications, services
from chat.domain.models import Membership, Message, Notification
from tests.factories import make_user
from tests.test_conversations import watching_reads
from tests.test_team_chat import api

pytestmark = pytest.mark.django_db(transaction=True)


def post(room, author, text, **extra) -> Message:
    return services.message_create(room=room, author=author, text=text, **extra).message


def feed_texts(user) -> list[str]:
    body = api(user).get("/api/chat/notifications/").json()
    return [n["message"]["message"] for n in body["results"]]


def test_a_reply_does_not_notify_a_former_member(room, alice, bob):
    root = post(room, bob, "pergunta do bob")
    services.membership_remove(room=room, user=bob, by=alice)

    post(room, alice, "segredo depois da saída do bob", reply_to=root.pk)

    assert not Notification.objects.filter(user=bob).exists()
    assert "segredo depois da saída do bob" not in feed_texts(bob)


def test_the_feed_does_not_show_edits_made_after_a_member_left(room, alice, bob):
    message = post(room, alice, "@bob olha")
    services.membership_remove(room=room, user=bob, by=alice)

    services.message_edit(room=room, message_id=message.pk, editor=alice, text="@bob segredo novo")

    assert "@bob segredo novo" not in feed_texts(bob)


def test_one_recipient_that_fails_does_not_stop_every_later_digest(room, alice, bob, monkeypatch):
    carla = make_user("carla", email="carla@example.com")  # a larger id than bob's
    Membership.objects.create(room=room, user=carla)
    bob.email = "bad-address@example.com"
    bob.save()
    post(room, alice, "@bob @carla olhem")
    Notification.objects.update(created_at=timezone.now() - timedelta(minutes=60))
    real_send = mail.EmailMessage.send

    def send(self, *args, **kwargs):
        if self.to == ["bad-address@example.com"]:
            raise smtplib.SMTPRecipientsRefused({self.to[0]: (550, b"no such user")})
        return real_send(self, *args, **kwargs)

    monkeypatch.setattr(mail.EmailMessage, "send", send)
    for _ in range(2):  # cron, run after run
        try:
            notifications.digests_send()
        except smtplib.SMTPException:
            pass

    assert [m.to for m in mail.outbox] == [["carla@example.com"]]


def test_the_digest_locks_only_notification_rows(room, alice, bob):
    bob.email = "bob@example.com"
    bob.save()
    post(room, alice, "@bob olha")
    Notification.objects.update(created_at=timezone.now() - timedelta(minutes=60))

    with CaptureQueriesContext(connection) as queries:
        notifications.digests_send()

    locking = [q["sql"] for q in queries if "FOR UPDATE" in q["sql"]]
    assert len(mail.outbox) == 1
    if connection.vendor == "sqlite":  # no row locks there: the database locks as a whole
        assert locking == []
        return
    (statement,) = locking
    assert 'FOR UPDATE OF "chat_notification"' in statement, statement


async def test_a_coalesced_read_is_not_lost_when_the_server_closes_the_socket(
    room, alice, bob, settings
):
    settings.CHAT_READ_COALESCE_SECONDS = 0.3
    first, second = [
        (await Message.objects.acreate(room=room, author=alice, text=t)).pk for t in ("a", "b")
    ]
    reader = await watching_reads(room, bob)
    await reader.send_json_to({"type": "read", "message_id": first})
    await reader.receive_json_from()
    await reader.send_json_to({"type": "read", "message_id": second})  # waits for the timer
    await reader.send_to(bytes_data=b"x")  # the server rejects and closes (closing=True)
    await reader.receive_output(timeout=1)  # error frame
    await reader.receive_output(timeout=1)  # close
    import asyncio

    await asyncio.sleep(0.5)  # the timer fires before the client's disconnect arrives
    await reader.disconnect()

    membership = await sync_to_async(lambda: room.memberships.get(user=bob))()
    assert membership.last_read_message_id == second
