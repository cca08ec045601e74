"""Subscriptions (who is told of which room's changes) and deliveries (the outbox)."""

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Event(models.TextChoices):
    """What a subscription can be told of: the name of its socket frame, mostly."""

    MESSAGE_CREATED = "message.created"
    MESSAGE_EDITED = "message.edited"
    MESSAGE_DELETED = "message.deleted"
    MEMBER_ADDED = "member.added"
    MEMBER_REMOVED = "member.removed"


ALL_EVENTS = [event.value for event in Event]
SECRET_PREFIX = "whsec_"


def secret_generate() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


class WebhookSubscription(models.Model):
    """A URL told of the changes of one room, or of every room bound to a record type."""

    url = models.URLField(max_length=2000)
    # Kept in clear: signing needs it. Shown once, when it is created; never logged.
    secret = models.CharField(max_length=100, default=secret_generate, editable=False)
    events = models.JSONField(default=list)  # of Event values
    room = models.ForeignKey(
        "chat.Room", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    # Every room whose Room.record_type is this type (a deal's rooms, a ticket's rooms).
    record_type = models.ForeignKey(
        "contenttypes.ContentType",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(room__isnull=False, record_type__isnull=True)
                | Q(room__isnull=True, record_type__isnull=False),
                name="webhook_room_or_record_type",
            )
        ]

    def __str__(self) -> str:
        target = f"room {self.room_id}" if self.room_id else f"record type {self.record_type}"
        return f"{self.url} ({target})"


class WebhookDelivery(models.Model):
    """One event for one subscription: stored with the change, sent by the worker."""

    class Status(models.TextChoices):
        PENDING = "pending"  # due at next_attempt_at (also while a worker holds it)
        DELIVERED = "delivered"
        FAILED = "failed"  # CHAT_WEBHOOK_MAX_ATTEMPTS spent; last_error says why

    # The receiver's idempotency key: the same on every attempt (X-Chat-Delivery, body "id").
    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(max_length=40, choices=Event.choices)
    body = models.TextField()  # the JSON, exactly the bytes signed and sent
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveIntegerField(null=True, blank=True)  # the last HTTP answer
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        indexes = [
            # The worker's one question: what is pending and due, oldest first.
            models.Index(
                fields=["next_attempt_at", "id"],
                condition=Q(status="pending"),
                name="webhook_delivery_due_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.delivery_id} ({self.status})"
