"""Post a message into a room from the shell: what a cron job or another service would run."""

import uuid

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from chat.domain import services
from chat.domain.models import Room
from chat.domain.refusals import Refusal


class Command(BaseCommand):
    help = (
        "Post TEXT into ROOM (its id, or its exact name) as USER (a member): stored and "
        "announced exactly as a WebSocket `chat.message`. With Redis (REDIS_URL) the sockets "
        "of every server process receive it at once; on the in-memory layer a server process "
        "cannot hear another process, and its clients get it by `after=` recovery."
    )

    def add_arguments(self, parser):
        parser.add_argument("room", help="room id (UUID) or exact room name")
        parser.add_argument("user", help="username of the author, a member of the room")
        parser.add_argument("text", help="the message")
        parser.add_argument("--client-id", help="idempotency key: a retry is stored once")

    def handle(self, *args, room, user, text, client_id=None, **options):
        target, author = _room(room), _user(user)
        try:
            result = services.message_create(
                room=target, author=author, text=text, client_id=client_id
            )
        except Refusal as refusal:
            raise CommandError(f"{refusal.code}: {refusal.detail}") from None
        message = result.message
        if not result.created:
            self.stdout.write(f"already stored as message {message.pk} (client_id {client_id})")
        elif result.announcement.delivered is False:
            self.stderr.write(
                f"stored as message {message.pk}, but the channel layer is down: "
                "open sockets get it when they recover (after=)"
            )
        else:
            self.stdout.write(f"posted message {message.pk} to {target.name} as {author}")


def _room(reference: str) -> Room:
    try:
        found = list(Room.objects.filter(pk=uuid.UUID(reference)))
    except ValueError:  # not a UUID: a name
        found = list(Room.objects.filter(name=reference)[:2])
    if len(found) != 1:
        problem = "no room" if not found else "more than one room"
        raise CommandError(f"{problem} with id or name {reference!r}")
    return found[0]


def _user(username: str):
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise CommandError(f"no active user {username!r}")
    return user
