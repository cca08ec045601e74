"""In-process A/B of what the metrics cost on the hot path (chat/observability/metrics.py).

    DATABASE_URL=sqlite:////tmp/metrics_micro.sqlite3 .venv/bin/python -m bench.metrics_micro
    PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) DATABASE_URL=... .venv/bin/python -m bench.metrics_micro

Side by side in one process, alternating (A, B, A, B in every round, so a noisy machine slows
both alike), median CPU time (time.process_time) of:

- one metric call alone (counter, labelled counter, histogram), in ns;
- one delivery of a broadcast to 100 daphne sockets, framed once (the product's path, as
  bench.delivery_micro): the fan-out loop without metrics (the code before them) against
  RoomHub._deliver (a count per socket, one `fanout_written` per event);
- one `message_create` (plain path, no channel layer): the metrics swapped for no-ops against
  the real ones (a counter and a histogram per message).

Run it once as is and once with PROMETHEUS_MULTIPROC_DIR (every value written to an mmap'ed file).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
import timeit
import types

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

from bench.delivery_micro import FRAME, SOCKETS, consumers  # first: it sets Django up
from chat.domain import events, services
from chat.observability import metrics
from chat.realtime import delivery
from chat.realtime.fanout import LocalRoom, RoomHub

ROUNDS = 7
EVENTS_PER_ROUND = 200
MESSAGES_PER_ROUND = 200


def _timed_block() -> None:
    with metrics.database_write.time():
        pass


def call_costs() -> dict[str, float]:
    """ns per call of each metric operation the hot path makes."""
    labelled = metrics.rate_limited_frames.labels("ping")
    calls = {
        "counter.inc()": metrics.messages_stored.inc,
        "labels(...).inc()": lambda: metrics.rate_limited_frames.labels("ping").inc(),
        "bound label .inc()": labelled.inc,
        "histogram.observe()": lambda: metrics.delivery_latency.observe(0.003),
        "histogram.time() block": _timed_block,
        "fanout_written(100, t)": lambda: metrics.fanout_written(100, time.time()),
    }
    number = 20000
    return {
        name: min(timeit.repeat(call, number=number, repeat=5)) / number * 1e9
        for name, call in calls.items()
    }


async def deliver_without_metrics(room: LocalRoom, event: dict) -> None:
    """RoomHub._deliver as it was before the metrics (commit f62ff15)."""
    for socket in tuple(room.sockets.values()):
        if socket.closing:
            continue
        try:
            await socket.room_event(event)
        except Exception:
            pass


def fanout_room() -> LocalRoom:
    room = LocalRoom("chat.room.bench")
    for consumer in consumers(framed=True):
        consumer.waiting_events = None
        room.sockets[consumer.channel_name] = consumer
    return room


async def fanout_round(room: LocalRoom, deliver) -> float:
    """CPU seconds per delivery (one socket's copy) for EVENTS_PER_ROUND messages."""
    for consumer in room.sockets.values():
        consumer.base_send.args[0].transport.clear()
    started = time.process_time()
    for n in range(EVENTS_PER_ROUND):
        event = delivery.broadcast_event(FRAME.replace("1234", str(n)))
        event["stored_at"] = time.time()
        await deliver(room, event)
    return (time.process_time() - started) / (EVENTS_PER_ROUND * SOCKETS)


_NO_METRICS = types.SimpleNamespace(
    messages_stored=types.SimpleNamespace(inc=lambda amount=1: None),
    database_write=types.SimpleNamespace(time=contextlib.nullcontext),
)


def message_setup():
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from chat.domain.models import Membership, Room

    call_command("migrate", verbosity=0)
    user, _ = get_user_model().objects.get_or_create(username="bench-metrics")
    room = Room.objects.create(name="metrics micro", created_by=user)
    Membership.objects.create(room=room, user=user, role="admin")
    events.publisher_install(lambda event: True)  # no channel layer: the domain's cost alone
    return user, room


def message_round(user, room, *, with_metrics: bool) -> float:
    services.metrics = metrics if with_metrics else _NO_METRICS
    try:
        started = time.process_time()
        for n in range(MESSAGES_PER_ROUND):
            services.message_create(room=room, author=user, text=f"mensagem {n}")
        return (time.process_time() - started) / MESSAGES_PER_ROUND
    finally:
        services.metrics = metrics


def alternate(rounds: int, variants: dict) -> dict[str, list[float]]:
    """Each round runs every variant twice, A B A B."""
    results = {name: [] for name in variants}
    for _ in range(rounds):
        for _ in range(2):
            for name, run in variants.items():
                results[name].append(run())
    return results


def report(title: str, results: dict[str, list[float]], unit: float, unit_name: str) -> None:
    print(f"\n{title} (median of {len(next(iter(results.values())))}, min–max), {unit_name}")
    base = statistics.median(next(iter(results.values())))
    for name, samples in results.items():
        median = statistics.median(samples)
        low, high = min(samples) * unit, max(samples) * unit
        print(
            f"  {name:28} {median * unit:9.2f}  ({low:.2f}–{high:.2f})  ÷ first {median / base:.3f}"
        )


def main() -> None:
    mode = f"multiprocess ({metrics.MULTIPROCESS_DIR})" if metrics.MULTIPROCESS_DIR else "single"
    print(f"prometheus_client mode: {mode}")
    print("\none call, ns (best of 5 × 20,000)")
    for name, cost in call_costs().items():
        print(f"  {name:28} {cost:9.0f}")

    room = fanout_room()
    hub = RoomHub(layer=None)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(fanout_round(room, hub._deliver))  # warm-up
    fanout = alternate(
        ROUNDS,
        {
            "no metrics (before)": lambda: loop.run_until_complete(
                fanout_round(room, deliver_without_metrics)
            ),
            "RoomHub._deliver (metrics)": lambda: loop.run_until_complete(
                fanout_round(room, hub._deliver)
            ),
        },
    )
    report(f"one delivery to {SOCKETS} daphne sockets, framed once", fanout, 1e6, "µs")

    import django.db

    user, chat_room = message_setup()
    message_round(user, chat_room, with_metrics=True)  # warm-up
    created = alternate(
        ROUNDS,
        {
            "metrics as no-ops": lambda: message_round(user, chat_room, with_metrics=False),
            "metrics": lambda: message_round(user, chat_room, with_metrics=True),
        },
    )
    vendor = django.db.connection.vendor
    report(f"one message_create, {vendor}, CPU of this process", created, 1e6, "µs")


if __name__ == "__main__":
    main()
