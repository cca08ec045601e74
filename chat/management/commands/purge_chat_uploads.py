"""Delete uploads no message carries after CHAT_UPLOAD_ORPHAN_HOURS, and the files of deleted
messages (what cron runs, e.g. hourly)."""

from django.core.management.base import BaseCommand

from chat.domain.attachments import uploads_purge


class Command(BaseCommand):
    help = "Delete orphan chat uploads and the files of deleted messages."

    def handle(self, *args, **options):
        self.stdout.write(f"{uploads_purge()} file(s) deleted")
