"""Erase what the chat holds of a user (a GDPR erasure request) without breaking rooms:
chat.domain.retention.user_erase says what goes and what is kept."""

from django.core.management.base import BaseCommand, CommandError

from chat.domain.retention import pseudonym, user_erase
from chat.management.user_reference import user_of


class Command(BaseCommand):
    help = (
        "Anonymize a user's chat account (renamed deleted-user-<id>, deactivated) and "
        "tombstone their messages, reactions, files and notifications. Cannot be undone."
    )

    def add_arguments(self, parser):
        parser.add_argument("user", help="username, or the account's id")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    def handle(self, *args, user, yes=False, **options):
        account = user_of(user)
        if not yes and not self._confirmed(account):
            raise CommandError("nothing erased")
        purged = user_erase(user=account)
        self.stdout.write(f"erased user {account.pk}, now {pseudonym(account)}: {purged}")

    def _confirmed(self, account) -> bool:
        try:
            answer = input(f"Erase user {account.pk} ({account.get_username()})? Type 'yes': ")
        except EOFError:  # no terminal (cron, a pipe): only --yes says yes
            return False
        return answer.strip().lower() == "yes"
