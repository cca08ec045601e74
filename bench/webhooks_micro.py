"""In-process A/B of the webhook recorder's cost on the hot path: `message_create` (plain).

    DATABASE_URL=sqlite:////tmp/webhooks_micro.sqlite3 .venv/bin/python -m bench.webhooks_micro
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/micro .venv/bin/python -m bench.webhooks_micro

The database must exist (it is migrated here, and its chat tables emptied). Alternating
rounds (so a noisy machine slows every variant alike), CPU time of this process per message
(the database server's own time on PostgreSQL is not in it):

- no hook: the recorders list emptied (the code before webhooks);
- hook, table empty: the webhooks app installed, no subscription anywhere;
- hook, other rooms: 200 subscriptions, none to this room (the EXISTS has rows to skip);
- subscribed: this room has a subscription: a transaction and the outbox row with the message.
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402

from chat.domain import events, services  # noqa: E402
from chat.domain.models import Membership, Message, Room  # noqa: E402
from webhooks.models import ALL_EVENTS, WebhookDelivery, WebhookSubscription  # noqa: E402

MESSAGES_PER_ROUND = 300
ROUNDS = 15
URL = "https://93.184.215.14/hook"


def setup():
    from django.contrib.auth import get_user_model

    call_command("migrate", verbosity=0)
    WebhookDelivery.objects.all().delete()
    WebhookSubscription.objects.all().delete()
    Room.objects.all().delete()
    user, _ = get_user_model().objects.get_or_create(username="bench-webhooks")
    rooms = {}
    for name in ("plain", "subscribed", *(f"other {n}" for n in range(200))):
        rooms[name] = Room.objects.create(name=name, created_by=user)
        Membership.objects.create(room=rooms[name], user=user, role="admin")
    events.publisher_install(lambda event: True)  # no channel layer: the domain's cost alone
    return user, rooms


def timed(user, room, count: int) -> float:
    start = time.process_time()
    for n in range(count):
        services.message_create(room=room, author=user, text=f"mensagem {n}")
    return (time.process_time() - start) / count * 1e6


def main():
    user, rooms = setup()
    installed = list(events._recordings)
    WebhookSubscription.objects.create(url=URL, room=rooms["subscribed"], events=ALL_EVENTS)
    others = [rooms[f"other {n}"] for n in range(200)]

    def no_hook():
        events._recordings.clear()
        try:
            return timed(user, rooms["plain"], MESSAGES_PER_ROUND)
        finally:
            events._recordings.extend(installed)

    def hook_table_empty():
        kept = list(WebhookSubscription.objects.all())
        WebhookSubscription.objects.all().delete()
        try:
            return timed(user, rooms["plain"], MESSAGES_PER_ROUND)
        finally:
            for subscription in kept:
                subscription.pk = None
                subscription.save()

    def hook_other_rooms():
        made = WebhookSubscription.objects.bulk_create(
            [WebhookSubscription(url=URL, room=room, events=ALL_EVENTS) for room in others]
        )
        try:
            return timed(user, rooms["plain"], MESSAGES_PER_ROUND)
        finally:
            WebhookSubscription.objects.filter(pk__in=[s.pk for s in made]).delete()

    def subscribed():
        return timed(user, rooms["subscribed"], MESSAGES_PER_ROUND)

    variants = {
        "no hook": no_hook,
        "hook, table empty": hook_table_empty,
        "hook, other rooms": hook_other_rooms,
        "subscribed": subscribed,
    }
    results = {name: [] for name in variants}
    timed(user, rooms["plain"], 100)  # warm-up
    for _ in range(ROUNDS):
        for name, variant in variants.items():
            results[name].append(variant())
    vendor = django.db.connection.vendor
    print(
        f"{vendor}: CPU µs per message_create, median of {ROUNDS} rounds of "
        f"{MESSAGES_PER_ROUND} (min–max)"
    )
    for name, samples in results.items():
        median, low, high = statistics.median(samples), min(samples), max(samples)
        print(f"  {name:20} {median:7.0f}  ({low:.0f}–{high:.0f})")
    print(f"  messages {Message.objects.count()}, deliveries {WebhookDelivery.objects.count()}")


if __name__ == "__main__":
    main()
