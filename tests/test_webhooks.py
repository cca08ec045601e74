"""Webhooks: signatures, the SSRF rule, backoff, and the outbox written with the change."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from chat.domain import events, services
from chat.domain.models import Message
from chat.realtime.delivery import frame_of
from tests.factories import make_room, make_user
from webhooks import signing
from webhooks.destinations import (
    EVERY_NETWORK,
    DestinationRefused,
    destination_check,
    private_networks_allowed,
)
from webhooks.models import ALL_EVENTS, WebhookDelivery, WebhookSubscription
from webhooks.sending import backoff_seconds

SECRET = "whsec_test"


# --- Signatures


def test_signature_header_is_stripe_style_hmac_of_timestamp_dot_body():
    body = b'{"id":"x"}'
    header = signing.signature_header(SECRET, body, timestamp=1700000000)
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


@pytest.mark.parametrize(
    ("secret", "body", "now", "valid"),
    [
        (SECRET, b"{}", 1700000000, True),
        (SECRET, b"{} ", 1700000000, False),  # the body changed
        ("whsec_other", b"{}", 1700000000, False),
        (SECRET, b"{}", 1700000000 + 301, False),  # replayed too late
    ],
)
def test_signature_valid_checks_body_secret_and_age(secret, body, now, valid):
    header = signing.signature_header(SECRET, b"{}", timestamp=1700000000)
    assert signing.signature_valid(secret, body, header, now=now) is valid


@pytest.mark.parametrize("header", ["", "v1=ab", "t=abc,v1=ab", "garbage"])
def test_signature_valid_refuses_malformed_headers(header):
    assert signing.signature_valid(SECRET, b"{}", header) is False


# --- Where webhooks may go (SSRF)


@pytest.fixture
def no_private_networks(settings):
    settings.CHAT_WEBHOOK_ALLOW_PRIVATE_NETWORKS = ()


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1.2.3",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "100.64.0.1",  # carrier-grade NAT
        "169.254.169.254",  # cloud metadata
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "[::1]",
        "[fe80::1]",
        "[fc00::1]",
        "[ff02::1]",
        "[::ffff:127.0.0.1]",
        "[64:ff9b::a00:1]",  # NAT64 of 10.0.0.1
        "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
    ],
)
def test_destination_refuses_non_public_addresses(no_private_networks, host):
    with pytest.raises(DestinationRefused, match="public addresses only"):
        destination_check(f"https://{host}/hook")


@pytest.mark.parametrize("host", ["93.184.215.14", "[2606:4700::1111]"])
def test_destination_takes_public_addresses(no_private_networks, host):
    destination = destination_check(f"https://{host}:8443/a/b?c=d")
    assert destination.address == host.strip("[]")
    assert (destination.port, destination.target) == (8443, "/a/b?c=d")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://93.184.215.14/x", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("https:///nohost", "names a host"),
        ("https://user:pw@93.184.215.14/", "no credentials"),
        ("https://93.184.215.14:99999/", "not a URL"),
    ],
)
def test_destination_refuses_other_urls(url, why):
    with pytest.raises(DestinationRefused, match=why):
        destination_check(url)


def fake_dns(monkeypatch, answers: dict[str, list[str]]):
    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_destination_resolves_names_and_refuses_any_private_answer(monkeypatch, settings):
    settings.CHAT_WEBHOOK_ALLOW_PRIVATE_NETWORKS = ()
    fake_dns(
        monkeypatch,
        {"hooks.example": ["93.184.215.14"], "mixed.example": ["93.184.215.14", "10.1.1.1"]},
    )
    assert destination_check("https://hooks.example/x").address == "93.184.215.14"
    with pytest.raises(DestinationRefused, match=r"10\.1\.1\.1"):
        destination_check("https://mixed.example/x")
    with pytest.raises(DestinationRefused, match="does not resolve"):
        destination_check("https://nowhere.example/x")


def test_private_networks_setting_allows_only_what_it_lists(settings):
    settings.CHAT_WEBHOOK_ALLOW_PRIVATE_NETWORKS = private_networks_allowed("127.0.0.1/32")
    assert destination_check("http://127.0.0.1:9/hook").address == "127.0.0.1"
    for refused in ["http://127.0.0.2/", "http://10.0.0.1/", "http://[::1]/"]:
        with pytest.raises(DestinationRefused):
            destination_check(refused)


@pytest.mark.parametrize(
    ("value", "networks"),
    [
        ("false", ()),
        ("", ()),
        ("true", EVERY_NETWORK),
        ("127.0.0.1, 10.0.0.0/8", ("127.0.0.1/32", "10.0.0.0/8")),
    ],
)
def test_private_networks_setting_is_parsed(value, networks):
    parsed = private_networks_allowed(value)
    assert parsed == tuple(ipaddress.ip_network(n) for n in networks)


def test_private_networks_setting_refuses_a_bad_entry():
    with pytest.raises(ImproperlyConfigured, match="CHAT_WEBHOOK_ALLOW_PRIVATE_NETWORKS"):
        private_networks_allowed("localhost")


# --- Backoff


def test_backoff_doubles_up_to_the_ceiling_with_half_of_it_random(settings):
    settings.CHAT_WEBHOOK_BACKOFF_SECONDS = 10
    settings.CHAT_WEBHOOK_BACKOFF_MAX_SECONDS = 100
    lowest = [backoff_seconds(n, rng=lambda: 0.0) for n in range(1, 7)]
    highest = [backoff_seconds(n, rng=lambda: 1.0) for n in range(1, 7)]
    assert highest == [10, 20, 40, 80, 100, 100]
    assert lowest == [5, 10, 20, 40, 50, 50]


# --- The outbox: a delivery per subscription, stored with the change


@pytest.fixture
def subscription(room):
    return WebhookSubscription.objects.create(
        url="https://93.184.215.14/h", room=room, events=ALL_EVENTS
    )


def bodies(**filters) -> list[dict]:
    rows = WebhookDelivery.objects.filter(**filters).order_by("id")
    return [json.loads(row.body) for row in rows]


def test_a_message_becomes_a_delivery_carrying_the_socket_frame(room, alice, subscription):
    message = services.message_create(room=room, author=alice, text="olá").message
    (body,) = bodies()
    delivery = WebhookDelivery.objects.get()
    assert body["id"] == str(delivery.delivery_id)
    assert (body["event"], delivery.event, delivery.status) == (
        "message.created",
        "message.created",
        "pending",
    )
    assert body["room"] == {
        "id": str(room.pk),
        "name": room.name,
        "record_type": None,
        "record_id": None,
    }
    assert body["data"] == json.loads(frame_of(events.MessageCreated(room.pk, message)))


def test_edits_deletes_and_membership_become_deliveries(room, alice, bob, subscription):
    carol = make_user("carol")
    message = services.message_create(room=room, author=bob, text="um").message
    edited = services.message_edit(room=room, message_id=message.pk, editor=bob, text="dois")
    deleted = services.message_delete(room=room, message_id=message.pk, actor=alice)
    services.membership_add(room=room, user=carol, by=alice)
    services.membership_remove(room=room, user=carol, by=alice)
    services.reaction_add(
        room=room,
        message_id=services.message_create(room=room, author=bob, text="três").message.pk,
        user=bob,
        emoji="👍",
    )
    names = [body["event"] for body in bodies()]
    assert names == [
        "message.created",
        "message.edited",
        "message.deleted",
        "member.added",
        "member.removed",
        "message.created",
    ]  # reactions are not webhook events
    edit, delete, added, removed = (body["data"] for body in bodies()[1:5])
    assert edit == json.loads(frame_of(events.MessageEdited(room.pk, edited.value)))
    assert delete == json.loads(frame_of(events.MessageDeleted(room.pk, deleted.value)))
    assert added == {
        "type": "member.added",
        "room": str(room.pk),
        "user": {"id": carol.pk, "username": "carol"},
        "role": "member",
    }
    assert removed == {"type": "member.removed", "room": str(room.pk), "user": {"id": carol.pk}}


def test_a_subscription_gets_only_the_events_it_chose(room, alice, bob):
    WebhookSubscription.objects.create(
        url="https://93.184.215.14/a", room=room, events=["member.added"]
    )
    services.message_create(room=room, author=alice, text="não")
    services.membership_add(room=room, user=make_user("dave"), by=alice)
    assert [body["event"] for body in bodies()] == ["member.added"]


def test_inactive_subscriptions_and_other_rooms_get_nothing(room, alice, bob):
    other = make_room(admins=[alice])
    WebhookSubscription.objects.create(url="https://93.184.215.14/a", room=other, events=ALL_EVENTS)
    WebhookSubscription.objects.create(
        url="https://93.184.215.14/b", room=room, events=ALL_EVENTS, active=False
    )
    services.message_create(room=room, author=alice, text="ninguém ouve")
    assert not WebhookDelivery.objects.exists()


def test_a_record_type_subscription_hears_every_room_of_that_type(room, alice, bob):
    record_type = ContentType.objects.get_for_model(type(alice))
    bound = make_room(admins=[alice])
    bound.record_type, bound.record_id = record_type, str(bob.pk)
    bound.save()
    WebhookSubscription.objects.create(
        url="https://93.184.215.14/r", record_type=record_type, events=ALL_EVENTS
    )
    services.message_create(room=room, author=alice, text="sala comum")
    services.message_create(room=bound, author=alice, text="sala do registro")
    (body,) = bodies()
    assert body["data"]["message"] == "sala do registro"
    assert body["room"]["record_type"] == f"{record_type.app_label}.{record_type.model}"
    assert body["room"]["record_id"] == str(bob.pk)


def test_each_subscription_gets_its_own_delivery_id(room, alice, subscription):
    WebhookSubscription.objects.create(url="https://93.184.215.14/2", room=room, events=ALL_EVENTS)
    services.message_create(room=room, author=alice, text="dois ouvintes")
    ids = {body["id"] for body in bodies()}
    assert len(ids) == 2


def test_a_rolled_back_message_leaves_no_delivery(room, alice, subscription):
    with pytest.raises(RuntimeError), transaction.atomic():
        services.message_create(room=room, author=alice, text="desfeita", client_id="c-1")
        services.message_create(room=room, author=alice, text="simples também")
        raise RuntimeError("the caller's transaction fails")
    assert not Message.objects.exists()
    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_plain_message_and_its_delivery_commit_together(monkeypatch):
    """The plain path is one INSERT with no transaction; with a subscription it gets one, so a
    failing outbox write takes the message with it (and nothing is announced)."""
    alice = make_user("alice")
    room = make_room(admins=[alice])
    WebhookSubscription.objects.create(url="https://93.184.215.14/h", room=room, events=ALL_EVENTS)

    def broken(*args, **kwargs):
        raise RuntimeError("outbox write failed")

    monkeypatch.setattr(WebhookDelivery.objects, "bulk_create", broken)
    with pytest.raises(RuntimeError):
        services.message_create(room=room, author=alice, text="tudo ou nada")
    assert not Message.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_room_without_subscriptions_costs_one_query_and_no_transaction(monkeypatch):
    alice = make_user("alice")
    room = make_room(admins=[alice])
    services.message_create(room=room, author=alice, text="aquecimento")
    opened = []
    real_atomic = transaction.atomic
    monkeypatch.setattr(
        events.transaction, "atomic", lambda *a, **k: opened.append(1) or real_atomic(*a, **k)
    )
    with CaptureQueriesContext(connection) as queries:
        services.message_create(room=room, author=alice, text="sem assinantes")
    webhook_queries = [q["sql"] for q in queries.captured_queries if "webhooks_" in q["sql"]]
    assert len(webhook_queries) == 1 and webhook_queries[0].startswith("SELECT 1")
    assert opened == []  # the plain path stays one INSERT in autocommit
    WebhookSubscription.objects.create(url="https://93.184.215.14/h", room=room, events=ALL_EVENTS)
    services.message_create(room=room, author=alice, text="com assinante")
    assert opened  # one around the INSERT (and bulk_create's own)
