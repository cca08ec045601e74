"""A room's webhooks over REST (room admins), and the operators' command."""

from __future__ import annotations

import io

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from tests.factories import access_token, make_room
from webhooks.models import ALL_EVENTS, WebhookDelivery, WebhookSubscription

PUBLIC_URL = "https://93.184.215.14/hooks/chat"


def client_of(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(user)}")
    return client


def webhooks_url(room) -> str:
    return f"/api/chat/rooms/{room.pk}/webhooks/"


@pytest.fixture(autouse=True)
def no_private_networks(settings):
    settings.CHAT_WEBHOOK_ALLOW_PRIVATE_NETWORKS = ()


def test_an_admin_creates_a_webhook_and_sees_its_secret_once(room, alice):
    client = client_of(alice)
    created = client.post(webhooks_url(room), {"url": PUBLIC_URL}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    stored = WebhookSubscription.objects.get()
    assert body["secret"] == stored.secret and stored.secret.startswith("whsec_")
    assert (body["url"], body["events"], body["active"]) == (PUBLIC_URL, ALL_EVENTS, True)
    assert (stored.room_id, stored.created_by_id) == (room.pk, alice.pk)
    listed = client.get(webhooks_url(room)).json()
    assert listed == [{k: v for k, v in body.items() if k != "secret"}]


def test_a_webhook_can_choose_its_events(room, alice):
    events = ["member.removed", "message.created", "message.created"]
    response = client_of(alice).post(
        webhooks_url(room), {"url": PUBLIC_URL, "events": events}, format="json"
    )
    assert response.json()["events"] == ["message.created", "member.removed"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"url": "http://127.0.0.1:8000/"}, 403, "not_allowed"),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, 403, "not_allowed"),
        ({"url": "https://[::1]/"}, 403, "not_allowed"),
        ({"url": "ftp://93.184.215.14/"}, 400, "invalid_request"),
        ({"url": "not a url"}, 400, "invalid_request"),
        ({"url": PUBLIC_URL, "events": ["message.reacted"]}, 400, "invalid_request"),
        ({"url": PUBLIC_URL, "events": []}, 400, "invalid_request"),
        ({}, 400, "invalid_request"),
    ],
)
def test_refused_webhooks_say_why(room, alice, body, status, code):
    response = client_of(alice).post(webhooks_url(room), body, format="json")
    assert (response.status_code, response.json()["code"]) == (status, code), response.content
    assert not WebhookSubscription.objects.exists()


def test_members_who_are_not_admins_and_outsiders_are_refused(room, bob, outsider):
    WebhookSubscription.objects.create(url=PUBLIC_URL, room=room, events=ALL_EVENTS)
    for method, path in [
        ("get", webhooks_url(room)),
        ("post", webhooks_url(room)),
        ("delete", f"{webhooks_url(room)}{WebhookSubscription.objects.get().pk}/"),
    ]:
        member = getattr(client_of(bob), method)(path, {"url": PUBLIC_URL}, format="json")
        stranger = getattr(client_of(outsider), method)(path, {"url": PUBLIC_URL}, format="json")
        assert (member.status_code, member.json()["code"]) == (403, "not_room_admin")
        assert (stranger.status_code, stranger.json()["code"]) == (404, "room_not_found")
    assert WebhookSubscription.objects.count() == 1


def test_an_admin_deletes_a_webhook_with_its_pending_deliveries(room, alice):
    subscription = WebhookSubscription.objects.create(url=PUBLIC_URL, room=room, events=ALL_EVENTS)
    other_room = make_room(admins=[alice])
    elsewhere = WebhookSubscription.objects.create(
        url=PUBLIC_URL, room=other_room, events=ALL_EVENTS
    )
    client = client_of(alice)
    from chat.domain import services

    services.message_create(room=room, author=alice, text="pendente")
    wrong_room = client.delete(f"{webhooks_url(room)}{elsewhere.pk}/")
    assert (wrong_room.status_code, wrong_room.json()["code"]) == (404, "not_found")
    assert client.delete(f"{webhooks_url(room)}{subscription.pk}/").status_code == 204
    assert list(WebhookSubscription.objects.all()) == [elsewhere]
    assert not WebhookDelivery.objects.exists()


def test_the_schema_documents_the_webhook_endpoints(client):
    import yaml

    schema = yaml.safe_load(client.get("/api/schema/").content)
    post = schema["paths"]["/api/chat/rooms/{room_id}/webhooks/"]["post"]
    assert {"201", "400", "401", "403", "404", "429"} <= post["responses"].keys()
    delete = schema["paths"]["/api/chat/rooms/{room_id}/webhooks/{webhook_id}/"]["delete"]
    assert {"204", "403", "404"} <= delete["responses"].keys()


def test_operators_subscribe_a_record_type_from_the_shell(db, alice):
    out = io.StringIO()
    call_command(
        "webhook_subscribe",
        PUBLIC_URL,
        "--record-type",
        "accounts.user",
        "--event",
        "message.created",
        stdout=out,
    )
    subscription = WebhookSubscription.objects.get()
    assert subscription.record_type == ContentType.objects.get_for_model(type(alice))
    assert subscription.events == ["message.created"] and subscription.room is None
    assert f"signing secret (shown once): {subscription.secret}" in out.getvalue()


def test_the_command_refuses_private_urls_and_unknown_types(db):
    with pytest.raises(CommandError, match="not_allowed"):
        call_command("webhook_subscribe", "http://10.0.0.1/", "--record-type", "accounts.user")
    with pytest.raises(CommandError, match="no model"):
        call_command("webhook_subscribe", PUBLIC_URL, "--record-type", "crm.nothing")
