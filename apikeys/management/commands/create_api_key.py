"""Make an API key for a service account: `manage.py create_api_key <username> --rooms <id>...`."""

import uuid

from django.core.management.base import BaseCommand, CommandError

from apikeys.keys import NotAServiceAccount, key_create, service_account_get_or_create
from chat.domain.models import Room


class Command(BaseCommand):
    help = (
        "Make an API key for the service account USERNAME (made if there is none: a bot that "
        "cannot log in with a password), reaching the rooms given; the account becomes a "
        "member of each. The key is printed once: only a hash of it is stored."
    )

    def add_arguments(self, parser):
        parser.add_argument("username", help="the service account (a bot user)")
        parser.add_argument(
            "--rooms", nargs="+", required=True, metavar="ROOM_ID", help="room ids (UUIDs)"
        )
        parser.add_argument("--name", default="", help="what uses the key, for people")

    def handle(self, *args, username, rooms, name, **options):
        granted = _rooms(rooms)
        try:
            user = service_account_get_or_create(username)
            key, text = key_create(user=user, rooms=granted, name=name)
        except NotAServiceAccount as error:
            raise CommandError(str(error)) from None
        self.stderr.write(
            f"API key {key.prefix} of {user.username} for {len(granted)} room(s); "
            "shown once, store it now:"
        )
        self.stdout.write(text)


def _rooms(room_ids: list[str]) -> list[Room]:
    try:
        pks = [uuid.UUID(room_id) for room_id in room_ids]
    except ValueError:
        raise CommandError(
            "--rooms takes room ids (UUIDs); see manage.py list_chat_rooms"
        ) from None
    found = Room.objects.in_bulk(pks)
    missing = [str(pk) for pk in pks if pk not in found]
    if missing:
        raise CommandError(f"no such room: {', '.join(missing)}")
    return [found[pk] for pk in pks]
