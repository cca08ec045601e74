"""The webhook worker against a real HTTP receiver on 127.0.0.1: signed POSTs, retries with
backoff, failure after the last attempt, no redirects, the SSRF rule again at delivery."""

from __future__ import annotations

import io
import json
import logging
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from chat.domain import services
from tests.webhook_receiver import Receiver
from webhooks.destinations import private_networks_allowed
from webhooks.models import ALL_EVENTS, WebhookDelivery, WebhookSubscription
from webhooks.sending import deliver_due, deliveries_claim

Status = WebhookDelivery.Status


@pytest.fixture
def receiver(settings):
    settings.CHAT_WEBHOOK_ALLOW_PRIVATE_NETWORKS = private_networks_allowed("127.0.0.1/32")
    settings.CHAT_WEBHOOK_TIMEOUT_SECONDS = 1.0
    settings.CHAT_WEBHOOK_BACKOFF_SECONDS = 60
    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def subscription(room, receiver):
    subscription = WebhookSubscription.objects.create(
        url=receiver.url, room=room, events=ALL_EVENTS
    )
    receiver.secret = subscription.secret
    return subscription


def due_now():
    WebhookDelivery.objects.filter(status=Status.PENDING).update(next_attempt_at=timezone.now())


def test_a_delivery_is_posted_signed_and_marked_delivered(room, alice, subscription, receiver):
    message = services.message_create(room=room, author=alice, text="olá").message
    assert deliver_due() == 1
    (request,) = receiver.requests
    delivery = WebhookDelivery.objects.get()
    assert request.signature_ok is True
    assert request.body == delivery.body.encode()
    assert request.path == "/hook"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Chat-Delivery"] == str(delivery.delivery_id)
    assert request.headers["X-Chat-Event"] == "message.created"
    assert request.headers["X-Chat-Attempt"] == "1"
    assert request.json["data"]["id"] == message.pk
    assert (delivery.status, delivery.attempts, delivery.last_status) == (Status.DELIVERED, 1, 200)
    assert delivery.delivered_at is not None
    assert deliver_due() == 0  # nothing twice


def test_a_failed_attempt_is_retried_later_with_the_same_id(room, alice, subscription, receiver):
    receiver.answer = lambda request: 503
    services.message_create(room=room, author=alice, text="tenta de novo")
    before = timezone.now()
    assert deliver_due() == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        Status.PENDING,
        1,
        "HTTP 503",
    )
    assert delivery.next_attempt_at >= before + timedelta(seconds=30)  # 60 s, half random
    assert deliver_due() == 0  # not due yet
    receiver.answer = lambda request: 200
    due_now()
    assert deliver_due() == 1
    first, second = receiver.requests
    assert first.headers["X-Chat-Delivery"] == second.headers["X-Chat-Delivery"]
    assert first.body == second.body and second.headers["X-Chat-Attempt"] == "2"
    assert WebhookDelivery.objects.get().status == Status.DELIVERED


def test_a_delivery_fails_after_the_last_attempt(room, alice, subscription, receiver, settings):
    settings.CHAT_WEBHOOK_MAX_ATTEMPTS = 3
    receiver.answer = lambda request: 500
    services.message_create(room=room, author=alice, text="nunca chega")
    for _ in range(5):
        due_now()
        deliver_due()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        Status.FAILED,
        3,
        "HTTP 500",
    )
    assert len(receiver.requests) == 3


def test_redirects_are_not_followed(room, alice, subscription, receiver):
    receiver.answer = lambda request: 302
    services.message_create(room=room, author=alice, text="para onde?")
    deliver_due()
    assert [request.path for request in receiver.requests] == ["/hook"]
    assert "redirects are not followed" in WebhookDelivery.objects.get().last_error


def test_a_slow_receiver_times_out(room, alice, subscription, receiver):
    receiver.answer = lambda request: time.sleep(1.5) or 200
    services.message_create(room=room, author=alice, text="devagar")
    deliver_due()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == Status.PENDING and "timed out" in delivery.last_error


def test_an_unreachable_receiver_is_an_error_to_retry(room, alice, subscription, receiver):
    receiver.stop()
    services.message_create(room=room, author=alice, text="ninguém em casa")
    deliver_due()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == Status.PENDING and "Connection" in delivery.last_error


def test_the_ssrf_rule_is_checked_again_at_delivery(room, alice, subscription, receiver, settings):
    services.message_create(room=room, author=alice, text="agora não")
    settings.CHAT_WEBHOOK_ALLOW_PRIVATE_NETWORKS = ()
    deliver_due()
    assert receiver.requests == []
    assert WebhookDelivery.objects.get().last_error.startswith("refused: 127.0.0.1 is a loopback")


def test_a_claimed_delivery_is_hidden_from_other_workers(room, alice, subscription):
    services.message_create(room=room, author=alice, text="minha")
    (claimed,) = deliveries_claim(limit=10)
    assert claimed.attempts == 1
    assert deliveries_claim(limit=10) == []  # another worker, meanwhile: nothing due
    assert WebhookDelivery.objects.get().next_attempt_at > timezone.now()


def test_deliveries_of_an_inactive_subscription_wait(room, alice, subscription, receiver):
    services.message_create(room=room, author=alice, text="em pausa")
    WebhookSubscription.objects.update(active=False)
    assert deliver_due() == 0
    WebhookSubscription.objects.update(active=True)
    assert deliver_due() == 1


def test_attempts_are_logged_without_secret_body_or_path(
    room, alice, subscription, receiver, caplog
):
    receiver.answer = lambda request: 500
    services.message_create(room=room, author=alice, text="segredo no corpo")
    with caplog.at_level(logging.INFO, logger="webhooks"):
        deliver_due()
    (record,) = [r for r in caplog.records if r.name.startswith("webhooks")]
    line = record.getMessage()
    assert "127.0.0.1:" in line and "HTTP 500" in line and "message.created" in line
    assert subscription.secret not in line and "segredo" not in line and "/hook" not in line


def test_the_command_sends_what_is_due_once(room, alice, subscription, receiver):
    for n in range(3):
        services.message_create(room=room, author=alice, text=f"m{n}")
    call_command("deliver_webhooks", "--once", "--batch", "2", stdout=io.StringIO())
    assert sorted(r.json["data"]["message"] for r in receiver.requests) == ["m0", "m1", "m2"]
    assert all(r.signature_ok for r in receiver.requests)
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {Status.DELIVERED}
    assert [json.loads(b)["event"] for b in WebhookDelivery.objects.values_list("body", flat=True)]
