"""What an operator sees: /metrics (who may read it, and figures that move with real traffic),
the admin's live page, and the multi-process mode."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
from django.test import AsyncClient, Client
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from crm_backend.metrics import metrics_networks
from tests import factories
from tests.e2e.server import PROJECT_DIR
from tests.ws import joined, open_socket, room_path

pytestmark = pytest.mark.django_db(transaction=True)

EXPECTED_NAMES = {
    "chat_open_sockets",
    "chat_handshakes_total",
    "chat_messages_stored_total",
    "chat_deliveries_total",
    "chat_delivery_latency_seconds_bucket",
    "chat_socket_buffered_bytes",
    "chat_socket_buffered_bytes_max",
    "chat_slow_socket_closes_total",
    "chat_channel_layer_round_trip_seconds_count",
    "chat_channel_layer_watchdog_failures_total",
    "chat_database_write_seconds_count",
    "chat_rate_limited_frames_total",
}


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, (label, value) pairs sorted): value} of a /metrics body."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape() -> dict[tuple, float]:
    response = await AsyncClient().get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return samples(response.content.decode())


def value(scraped: dict, name: str, **labels) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_move_with_a_message_sent_through_real_sockets(room, alice, bob, settings):
    before = await scrape()
    assert {name for name, _ in before} >= EXPECTED_NAMES - {
        # Labelled series appear once they have a value; histograms without labels at once.
        "chat_open_sockets",
        "chat_handshakes_total",
        "chat_slow_socket_closes_total",
        "chat_channel_layer_watchdog_failures_total",
        "chat_rate_limited_frames_total",
    }
    sender = await joined(room_path(room), token=factories.access_token(alice))
    receiver = await joined(room_path(room), token=factories.access_token(bob))
    refused = await open_socket(room_path(room), token="not-a-jwt")
    await refused.receive_json_from()
    joined_ = await scrape()  # bob's presence reached alice: a delivery before the message
    await sender.send_json_to({"type": "chat.message", "message": "olá"})
    assert (await sender.receive_json_from())["message"] == "olá"
    assert (await receiver.receive_json_from())["message"] == "olá"
    sent = await scrape()
    message_moved = {
        "chat_messages_stored_total": 1,
        "chat_deliveries_total": 2,  # alice's acknowledgement and bob's copy
        "chat_delivery_latency_seconds_count": 1,
        "chat_database_write_seconds_count": 1,
    }
    for name, delta in message_moved.items():
        assert value(sent, name) - value(joined_, name) == delta, name
    latency = value(sent, "chat_delivery_latency_seconds_sum") - value(
        joined_, "chat_delivery_latency_seconds_sum"
    )
    assert 0 < latency < 5  # seconds from created_at to bob's copy written
    settings.CHAT_FRAME_BUDGETS = {**settings.CHAT_FRAME_BUDGETS, "ping": (0.001, 1)}
    pinger = await joined(room_path(room), token=factories.access_token(bob))
    for _ in range(2):
        await pinger.send_json_to({"type": "ping"})
    assert (await pinger.receive_json_from())["type"] == "pong"
    assert (await pinger.receive_json_from())["code"] == "rate_limited"

    during = await scrape()
    community = {"room_type": "community"}
    assert value(during, "chat_open_sockets", **community) == (
        value(before, "chat_open_sockets", **community) + 3
    )
    moved = {
        ("chat_handshakes_total", (("close_code", ""), ("result", "accepted"))): 3,
        ("chat_handshakes_total", (("close_code", "4401"), ("result", "refused"))): 1,
        ("chat_rate_limited_frames_total", (("frame_type", "ping"),)): 1,
    }
    for key, delta in moved.items():
        assert during.get(key, 0) - before.get(key, 0) == delta, key

    for socket in (sender, receiver, pinger):
        await socket.disconnect()
    after = await scrape()
    assert value(after, "chat_open_sockets", **community) == value(
        before, "chat_open_sockets", **community
    )


async def test_a_socket_whose_clean_up_fails_is_no_longer_counted_open(room, alice, monkeypatch):
    from chat.realtime.consumers.room import ChatConsumer

    async def presence_down(self, *, online):
        if not online:
            raise ConnectionError("channel layer gone")

    monkeypatch.setattr(ChatConsumer, "announce_presence", presence_down)
    community = {"room_type": "community"}
    before = value(await scrape(), "chat_open_sockets", **community)
    socket = await joined(room_path(room), token=factories.access_token(alice))
    assert value(await scrape(), "chat_open_sockets", **community) == before + 1
    await socket.disconnect()
    assert value(await scrape(), "chat_open_sockets", **community) == before


def test_metrics_are_refused_outside_the_allowed_networks(settings):
    settings.CHAT_METRICS_ALLOWED_NETWORKS = metrics_networks(["10.0.0.0/8"])
    response = Client().get("/metrics", HTTP_X_FORWARDED_FOR="10.1.2.3")  # no trusted proxy
    assert response.status_code == 403
    assert response.json() == {
        "code": "not_allowed",
        "detail": "metrics are served only to CHAT_METRICS_ALLOWED_NETWORKS",
    }
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200


def test_a_request_through_a_proxy_on_loopback_is_not_loopback(settings):
    """nginx on the same host: every Internet request's peer is 127.0.0.1, an allowed network."""
    from accounts.client_address import trusted_proxies

    settings.CHAT_METRICS_ALLOWED_NETWORKS = metrics_networks(["127.0.0.1/32", "10.0.0.0/8"])
    settings.CHAT_TRUSTED_PROXIES = ()  # the proxy not declared: its header is not believed
    assert Client().get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    assert Client().get("/metrics", HTTP_X_REAL_IP="203.0.113.9").status_code == 403
    assert Client().get("/metrics").status_code == 200  # a scraper on the host itself
    settings.CHAT_TRUSTED_PROXIES = trusted_proxies(["127.0.0.1"])
    assert Client().get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    assert Client().get("/metrics", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 200
    # A client's own header passed through unchanged names the proxy: not believed.
    assert Client().get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 403


def test_metrics_with_a_token_need_it_outside_the_allowed_networks(settings):
    settings.CHAT_METRICS_ALLOWED_NETWORKS = metrics_networks([])
    settings.CHAT_METRICS_TOKEN = "s3cret-scraper-token"
    anonymous = Client().get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "authentication_required"
    assert anonymous["WWW-Authenticate"] == 'Bearer realm="metrics"'
    wrong = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer guessed")
    assert wrong.status_code == 401
    right = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scraper-token")
    assert right.status_code == 200
    assert b"chat_messages_stored_total" in right.content


def test_a_bad_network_stops_start_up():
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="CHAT_METRICS_ALLOWED_NETWORKS"):
        metrics_networks(["10.0.0.300/8"])


def test_the_admin_page_is_for_staff_only(alice):
    staff = factories.make_user("operator", is_staff=True)
    as_staff = Client()
    as_staff.force_login(staff)
    page = as_staff.get("/admin/chat-metrics/")
    assert page.status_code == 200
    assert b"/static/vendor/uplot-1.6.32/uPlot.iife.min.js" in page.content
    assert b"/static/chat_metrics.js" in page.content
    data = as_staff.get("/admin/chat-metrics/data/")
    assert data.status_code == 200
    assert "chat_messages_stored_total" in data.json()["samples"]

    as_member = Client()
    as_member.force_login(alice)  # a user, not staff
    for path in ("/admin/chat-metrics/", "/admin/chat-metrics/data/"):
        refused = as_member.get(path)
        assert refused.status_code == 302
        assert refused["Location"].startswith(f"/admin/login/?next={path}")
        assert Client().get(path).status_code == 302


def test_the_chart_library_is_vendored():
    for name in ("uPlot.iife.min.js", "uPlot.min.css", "LICENSE"):
        assert (PROJECT_DIR / "static" / "vendor" / "uplot-1.6.32" / name).stat().st_size > 0


RECORD = """
import os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "crm_backend.settings"
from chat.observability import metrics
metrics.messages_stored.inc(int(sys.argv[1]))
metrics.socket_opened("group")
if sys.argv[2] == "stay":
    print(metrics.exposition()[0].decode())
if sys.argv[2] == "killed":
    os._exit(0)  # as SIGKILL or the OOM killer: no atexit
"""


def test_multiprocess_mode_adds_up_every_process(tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR, /metrics sums the processes' files; the gauge of an
    exited or killed process stops counting (livesum), its counters stay."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", RECORD, *args],
            cwd=PROJECT_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("2", "exit")
    run("4", "killed")
    scraped = samples(run("3", "stay"))
    assert value(scraped, "chat_messages_stored_total") == 9
    assert value(scraped, "chat_open_sockets", room_type="group") == 1  # the live one only


def test_the_dashboard_plots_every_metric():
    dashboard = json.loads((PROJECT_DIR / "docs" / "grafana-dashboard.json").read_text())
    queries = " ".join(
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", ())
    )
    for name in EXPECTED_NAMES:
        family = name.removesuffix("_bucket").removesuffix("_count")
        assert family.removesuffix("_total") in queries, name


def sample(name: str, **labels) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_watchdog_times_its_round_trips_and_counts_failures(monkeypatch):
    from chat.realtime import liveness

    async def same_run_id(url):
        return "run-1"

    # One shard checked through the test's in-memory layer (no Redis in this test).
    monkeypatch.setattr(liveness, "redis_run_id", same_run_id)
    watchdog = liveness.LayerWatchdog()
    shard = liveness.ShardCheck(watchdog.layer, 0, "redis://shard-0", round_trip=True)
    watchdog.shards = [shard]
    timed = sample("chat_channel_layer_round_trip_seconds_count")
    await watchdog.check_once()
    assert sample("chat_channel_layer_round_trip_seconds_count") == timed + 1

    async def unreachable():
        raise OSError("connection refused")

    monkeypatch.setattr(shard, "round_trip", unreachable)
    failed = sample("chat_channel_layer_watchdog_failures_total", problem="unavailable")
    await watchdog.check_once()
    assert sample("chat_channel_layer_watchdog_failures_total", problem="unavailable") == failed + 1


class Backlog:
    def __init__(self, queued: int, why: str | None = None) -> None:
        self.queued, self.why = queued, why

    def queued_bytes(self) -> int:
        return self.queued

    def behind(self, frame_length: int) -> str | None:
        return self.why


class Socket:
    def __init__(self, backlog) -> None:
        self.send_backlog = backlog


@pytest.mark.parametrize(
    ("why", "reason"),
    [
        ("80 bytes queued: over CHAT_SOCKET_BUFFER_BYTES", "buffer_bytes"),
        ("send buffer full for CHAT_SLOW_RECEIVER_SECONDS", "not_reading"),
    ],
)
def test_a_socket_closed_for_slowness_is_counted_by_reason(why, reason):
    from chat.realtime.consumers.base import BaseChatConsumer

    consumer = BaseChatConsumer()
    consumer.scope, consumer.send_backlog = {"path": "/ws/chat/x/"}, Backlog(80, why)
    before = sample("chat_slow_socket_closes_total", reason=reason)
    assert consumer.fallen_behind("frame")
    assert sample("chat_slow_socket_closes_total", reason=reason) == before + 1


def test_buffered_bytes_are_sampled_over_the_open_sockets(monkeypatch):
    from chat.realtime import liveness

    sockets = [Socket(Backlog(100)), Socket(Backlog(2500)), Socket(None)]  # None: uvicorn
    monkeypatch.setattr(liveness, "_open_sockets", set(sockets))
    liveness.sample_send_buffers()
    assert sample("chat_socket_buffered_bytes") == 2600
    assert sample("chat_socket_buffered_bytes_max") == 2500


async def test_buffered_bytes_fall_to_zero_when_the_last_socket_closes(monkeypatch, settings):
    from chat.realtime import liveness

    open_sockets = {Socket(Backlog(2500))}
    monkeypatch.setattr(liveness, "_open_sockets", open_sockets)
    settings.CHAT_ACCOUNT_CHECK_SECONDS = 0

    async def the_check_closes_them() -> None:
        open_sockets.clear()  # after the sample: the loop ends with no socket

    monkeypatch.setattr(liveness, "close_refused_sockets", the_check_closes_them)
    await liveness.check_accounts_while_sockets_open()
    assert sample("chat_socket_buffered_bytes") == 0
    assert sample("chat_socket_buffered_bytes_max") == 0


class QueuedLayer:
    """A channel layer with a backlog past CHANNEL_LAYER_CAPACITY, its events ready at once."""

    def __init__(self, events: int) -> None:
        self.events = [{"type": "chat.broadcast", "frame": "{}"}] * events
        self.ready = asyncio.Event()
        self.receive_buffer = {"room.1": self}

    def qsize(self) -> int:
        from django.conf import settings

        return settings.CHANNEL_LAYER_CAPACITY + 1

    async def new_channel(self) -> str:
        return "room.1"

    async def group_add(self, group, channel) -> None:
        pass

    async def group_discard(self, group, channel) -> None:
        pass

    async def receive(self, channel):
        await self.ready.wait()
        if self.events:
            return self.events.pop()
        await asyncio.Event().wait()  # nothing more: wait to be cancelled


class ClosedForBacklog:
    channel_name = "socket.1"
    closing = False
    overflows = 0

    async def layer_overflow(self, event) -> None:
        self.overflows += 1


async def test_a_room_that_fell_behind_is_closed_and_counted_once():
    from chat.observability import metrics
    from chat.realtime.fanout import RoomHub

    def closes() -> float:
        labels = {"reason": metrics.ROOM_BACKLOG}
        return REGISTRY.get_sample_value("chat_slow_socket_closes_total", labels) or 0.0

    before = closes()
    layer, socket = QueuedLayer(events=3), ClosedForBacklog()
    hub = RoomHub(layer)
    await hub.join("room", socket)
    layer.ready.set()
    for _ in range(20):
        await asyncio.sleep(0)
    assert closes() - before == 1
    assert socket.overflows == 1


def test_a_message_rolled_back_is_not_counted_stored(room, alice):
    from django.db import transaction

    from chat.domain import services

    def stored() -> float:
        return REGISTRY.get_sample_value("chat_messages_stored_total") or 0.0

    before = stored()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.message_create(room=room, author=alice, text="never committed")
        raise RuntimeError("the caller's transaction fails")
    assert stored() == before
    services.message_create(room=room, author=alice, text="committed")
    assert stored() == before + 1
