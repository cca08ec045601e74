"""Tombstone the messages older than their room's `retention_days` (what cron runs, daily):
chat.domain.retention.retention_apply."""

from django.core.management.base import BaseCommand

from chat.domain.retention import Purged, retention_apply


class Command(BaseCommand):
    help = (
        "Delete (tombstone) the messages older than their room's retention_days, with their "
        "files, reactions, notifications and edit history; ids stay, for after= recovery."
    )

    def handle(self, *args, **options):
        total = Purged()
        done = retention_apply()
        for room in done:
            total.add(room.purged)
            if room.purged:
                days = room.retention_days
                self.stdout.write(f"room {room.room_id} ({days} days): {room.purged}")
        self.stdout.write(f"{len(done)} room(s) with retention: {total}")
