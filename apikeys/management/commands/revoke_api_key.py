"""Revoke an API key: `manage.py revoke_api_key <prefix or key>`."""

from django.core.management.base import BaseCommand, CommandError

from apikeys.keys import key_from_text, key_revoke


class Command(BaseCommand):
    help = (
        "Revoke the API key of PREFIX (the part before the first '.', as the admin lists it) "
        "or the key itself. With Redis (REDIS_URL) its open sockets on every server process "
        "close at once (api_key_revoked / 4401); on the in-memory layer, within "
        "CHAT_ACCOUNT_CHECK_SECONDS."
    )

    def add_arguments(self, parser):
        parser.add_argument("key", help="the key's prefix, or the key")

    def handle(self, *args, key, **options):
        found = key_from_text(key)
        if found is None:
            raise CommandError("no such API key")
        if not key_revoke(found):
            self.stdout.write(f"API key {found.prefix} was revoked already")
            return
        self.stdout.write(f"API key {found.prefix} of {found.user.username} revoked")
