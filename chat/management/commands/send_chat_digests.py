"""E-mail each user a digest of their unread chat notifications (what cron runs, e.g. every
5 minutes): only notifications older than CHAT_NOTIFY_EMAIL_AFTER_MINUTES, each in one digest
only, never for users who turned digests off."""

from django.conf import settings
from django.core.management.base import BaseCommand
from django.urls import reverse

from chat.domain.notifications import digests_send


class Command(BaseCommand):
    help = "E-mail digests of unread chat notifications (mentions, replies, direct messages)."

    def handle(self, *args, **options):
        base = settings.CHAT_PUBLIC_BASE_URL.rstrip("/")

        def unsubscribe_url(token: str) -> str:
            return base + reverse("digest-unsubscribe", kwargs={"token": token})

        sent = digests_send(unsubscribe_url=unsubscribe_url)
        self.stdout.write(f"{sent} digest(s) sent")
