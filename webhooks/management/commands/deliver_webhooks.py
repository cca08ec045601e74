"""The webhook worker: sends what the outbox holds, as long as it runs (or once, for cron)."""

import logging
import signal
import time

from django.core.management.base import BaseCommand
from django.db import DatabaseError, close_old_connections

from webhooks.sending import deliver_due

logger = logging.getLogger("webhooks.sending")


class Command(BaseCommand):
    help = (
        "Send due webhook deliveries (POST, signed), retrying failures with exponential "
        "backoff up to CHAT_WEBHOOK_MAX_ATTEMPTS. Runs until SIGTERM/SIGINT (finishing the "
        "delivery in hand); --once sends what is due and exits. On PostgreSQL several workers "
        "may run; on SQLite run one."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="send what is due, then exit")
        parser.add_argument(
            "--interval", type=float, default=1.0, help="seconds between polls when idle"
        )
        parser.add_argument(
            "--batch",
            type=int,
            default=10,
            help="deliveries claimed at once; a worker killed meanwhile leaves them waiting "
            "batch x 2 x CHAT_WEBHOOK_TIMEOUT_SECONDS + 5 s",
        )

    def handle(self, *args, once=False, interval=1.0, batch=10, **options):
        if once:
            while deliver_due(limit=batch):
                pass
            return
        stopping = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopping.append(True))
        logger.info("webhook worker started")
        while not stopping:
            if not self._round(batch):
                time.sleep(interval)
        logger.info("webhook worker stopped")

    def _round(self, batch: int) -> int:
        close_old_connections()  # a database that restarted: reconnect rather than fail
        try:
            return deliver_due(limit=batch)
        except DatabaseError:
            logger.exception("webhook worker: database unavailable; retrying")
            return 0
