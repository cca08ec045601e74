"""The worker's side: take due deliveries, POST them signed, record the outcome, back off.

At least once: a delivery is claimed (counted as an attempt, hidden from other workers for a
lease) before it is sent and marked delivered after the receiver answered 2xx. A worker that
dies between the two leaves it due again when the lease runs out, and it is sent again with the
same delivery id, which receivers dedupe on. On PostgreSQL several workers can run (rows are
claimed FOR UPDATE SKIP LOCKED); on SQLite run one.
"""

from __future__ import annotations

import http.client
import logging
import random
import socket
import ssl
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from webhooks import signing
from webhooks.destinations import Destination, DestinationRefused, destination_check
from webhooks.models import WebhookDelivery

logger = logging.getLogger(__name__)

USER_AGENT = "crm-chat-webhooks/1"
RESPONSE_BYTES_READ = 64 * 1024  # of an answer's body: read to reuse nothing, then dropped
Status = WebhookDelivery.Status


def backoff_seconds(attempts: int, *, rng=random.random) -> float:
    """The wait after the `attempts`-th failed attempt: doubling from
    CHAT_WEBHOOK_BACKOFF_SECONDS up to CHAT_WEBHOOK_BACKOFF_MAX_SECONDS, half of it random so
    the deliveries that failed together (a receiver down) do not all come back together."""
    ceiling = settings.CHAT_WEBHOOK_BACKOFF_MAX_SECONDS
    delay = min(ceiling, settings.CHAT_WEBHOOK_BACKOFF_SECONDS * 2 ** (attempts - 1))
    return delay / 2 + rng() * delay / 2


def lease_seconds(batch: int) -> float:
    """How long a claimed batch is hidden from other workers: longer than sending all of it
    (each send: resolving, then a connection and an answer bounded by the timeout)."""
    return batch * 2 * settings.CHAT_WEBHOOK_TIMEOUT_SECONDS + 5


def deliveries_claim(*, limit: int) -> list[WebhookDelivery]:
    """Up to `limit` due deliveries of active subscriptions, oldest first, claimed by this
    worker: their attempt counted and their next attempt moved past the lease."""
    now = timezone.now()
    with transaction.atomic():
        due = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("subscription")
            .filter(status=Status.PENDING, next_attempt_at__lte=now, subscription__active=True)
            .order_by("next_attempt_at", "id")[:limit]
        )
        claimed = list(due)
        WebhookDelivery.objects.filter(pk__in=[d.pk for d in claimed]).update(
            attempts=F("attempts") + 1,
            next_attempt_at=now + timedelta(seconds=lease_seconds(limit)),
        )
    for delivery in claimed:
        delivery.attempts += 1
    return claimed


class _PinnedConnection(http.client.HTTPConnection):
    """HTTP to the address that was checked, not to whatever the host resolves to by now."""

    def __init__(self, destination: Destination, timeout: float) -> None:
        super().__init__(destination.url.hostname, destination.port, timeout=timeout)
        self.pinned_address = destination.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.pinned_address, self.port), self.timeout)


class _PinnedTLSConnection(_PinnedConnection):
    """HTTPS likewise; the certificate is checked against the URL's host name."""

    default_port = 443

    def __init__(self, destination: Destination, timeout: float) -> None:
        super().__init__(destination, timeout)
        self.tls = ssl.create_default_context()

    def connect(self) -> None:
        super().connect()
        self.sock = self.tls.wrap_socket(self.sock, server_hostname=self.host)


def post(destination: Destination, body: bytes, headers: dict[str, str]) -> int:
    """POST `body`; the answer's status. http.client follows no redirect: a 3xx is an answer."""
    kind = _PinnedTLSConnection if destination.url.scheme == "https" else _PinnedConnection
    connection = kind(destination, settings.CHAT_WEBHOOK_TIMEOUT_SECONDS)
    try:
        connection.request("POST", destination.target, body=body, headers=headers)
        response = connection.getresponse()
        response.read(RESPONSE_BYTES_READ)
        return response.status
    finally:
        connection.close()


def request_headers(delivery: WebhookDelivery, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Chat-Event": delivery.event,
        "X-Chat-Delivery": str(delivery.delivery_id),
        "X-Chat-Attempt": str(delivery.attempts),
        signing.HEADER: signing.signature_header(delivery.subscription.secret, body),
    }


def delivery_send(delivery: WebhookDelivery) -> bool:
    """One attempt at a claimed delivery, its outcome stored and logged; True if delivered."""
    body = delivery.body.encode()
    status, error = None, ""
    try:
        destination = destination_check(delivery.subscription.url)  # again: DNS changes
        status = post(destination, body, request_headers(delivery, body))
    except DestinationRefused as refused:
        error = f"refused: {refused}"
    except (OSError, http.client.HTTPException) as failure:  # timeouts, resets, TLS
        error = f"{type(failure).__name__}: {failure}"
    if status is not None and not 200 <= status < 300:
        error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
    _outcome_store(delivery, status, error)
    return not error


def _outcome_store(delivery: WebhookDelivery, status: int | None, error: str) -> None:
    now = timezone.now()
    changes: dict = {"last_status": status, "last_error": error[:1000]}
    if not error:
        changes.update(status=Status.DELIVERED, delivered_at=now)
    elif delivery.attempts >= settings.CHAT_WEBHOOK_MAX_ATTEMPTS:
        changes.update(status=Status.FAILED)
    else:
        changes.update(next_attempt_at=now + timedelta(seconds=backoff_seconds(delivery.attempts)))
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**changes)
    _log_attempt(delivery, status, error, changes.get("status", Status.PENDING))


def _log_attempt(delivery: WebhookDelivery, status: int | None, error: str, now: str) -> None:
    # The host only: a URL's path or query may itself be a credential (chat tools' hook URLs);
    # never the secret, never the body.
    host = urlsplit(delivery.subscription.url).netloc
    level = logging.INFO if not error else logging.WARNING
    logger.log(
        level,
        "webhook %s %s to %s attempt %d: %s -> %s",
        delivery.event,
        delivery.delivery_id,
        host,
        delivery.attempts,
        status if not error else error,
        now,
    )


def deliver_due(*, limit: int = 10) -> int:
    """Claim and send what is due; how many were attempted."""
    claimed = deliveries_claim(limit=limit)
    for delivery in claimed:
        delivery_send(delivery)
    return len(claimed)
