"""Subscribe a URL to a room's or a record type's changes, from the shell (operators)."""

import uuid

from django.contrib.contenttypes.models import ContentType
from django.core.management.base import BaseCommand, CommandError

from chat.domain.models import Room
from chat.domain.refusals import Refusal
from webhooks import services
from webhooks.models import ALL_EVENTS


class Command(BaseCommand):
    help = (
        "Subscribe URL to the changes of one room (--room ID) or of every room bound to a "
        "record type (--record-type app_label.model). Prints the signing secret once."
    )

    def add_arguments(self, parser):
        parser.add_argument("url")
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--room", help="the room's id")
        target.add_argument("--record-type", help="app_label.model, e.g. crm.deal")
        parser.add_argument(
            "--event", action="append", choices=ALL_EVENTS, help="repeatable; default: all"
        )

    def handle(self, *args, url, room=None, record_type=None, event=None, **options):
        try:
            subscription = services.subscription_create(
                url=url,
                events=event,
                room=_room(room) if room else None,
                record_type=_record_type(record_type) if record_type else None,
            )
        except Refusal as refusal:
            raise CommandError(f"{refusal.code}: {refusal.detail}") from None
        self.stdout.write(f"webhook {subscription.pk}: {', '.join(subscription.events)}")
        self.stdout.write(f"signing secret (shown once): {subscription.secret}")


def _room(reference: str) -> Room:
    try:
        return Room.objects.get(pk=uuid.UUID(reference))
    except (ValueError, Room.DoesNotExist):
        raise CommandError(f"no room with id {reference!r}") from None


def _record_type(reference: str) -> ContentType:
    app_label, _, model = reference.lower().partition(".")
    try:
        return ContentType.objects.get(app_label=app_label, model=model)
    except ContentType.DoesNotExist:
        raise CommandError(f"no model {reference!r} (app_label.model)") from None
