"""Subscriptions: created (the URL checked, the secret made), listed, removed.

A room's subscriptions are its admins' (`by`: the user asking; None: the system, e.g. an
operator's command, which may also subscribe to a record type). Refusals are the chat's
(chat.domain.refusals), so REST answers them in its one vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.contenttypes.models import ContentType

from chat.domain import refusals
from chat.domain.access import is_room_admin
from chat.domain.models import Room
from webhooks.destinations import DestinationRefused, destination_check
from webhooks.models import ALL_EVENTS, WebhookSubscription


def _admin_check(room: Room, by) -> None:
    if by is not None and not is_room_admin(by, room):
        raise refusals.NotRoomAdmin()


def url_check(url: str) -> str:
    """The URL, if the server will POST to it (resolved now; again at every delivery)."""
    try:
        destination_check(url)
    except DestinationRefused as refused:
        raise refusals.NotAllowed(f"webhook URL refused: {refused}") from None
    return url


def events_check(events: Sequence[str] | None) -> list[str]:
    if not events:
        return list(ALL_EVENTS)
    unknown = sorted(set(events) - set(ALL_EVENTS))
    if unknown:
        raise refusals.InvalidRequest(f"unknown events {unknown}; known: {ALL_EVENTS}")
    return [event for event in ALL_EVENTS if event in events]  # each once, in one order


def subscription_create(
    *,
    url: str,
    events: Sequence[str] | None = None,
    room: Room | None = None,
    record_type: ContentType | None = None,
    by=None,
) -> WebhookSubscription:
    """A subscription to a room's changes (its admins) or to every room of a record type (the
    system only). Its `secret` is readable on the returned object: show it once."""
    if (room is None) == (record_type is None):
        raise refusals.InvalidRequest("a webhook is for one room or for one record type")
    if room is not None:
        _admin_check(room, by)
    elif by is not None:
        raise refusals.NotAllowed("record-type webhooks are set up by operators")
    return WebhookSubscription.objects.create(
        url=url_check(url),
        events=events_check(events),
        room=room,
        record_type=record_type,
        created_by=by,
    )


def subscription_list(*, room: Room, by=None) -> list[WebhookSubscription]:
    _admin_check(room, by)
    return list(WebhookSubscription.objects.filter(room=room).order_by("id"))


def subscription_delete(*, room: Room, subscription_id: int, by=None) -> bool:
    """Remove one of the room's subscriptions, with its deliveries not yet sent; False if the
    room has no such subscription."""
    _admin_check(room, by)
    deleted, _ = WebhookSubscription.objects.filter(room=room, pk=subscription_id).delete()
    return bool(deleted)
