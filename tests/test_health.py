"""GET /healthz: 200 when the database and the channel layer answer, 503 when one does not."""

import pytest
from django.test import Client

CLOSED_REDIS_PORT = "redis://127.0.0.1:1/0"


@pytest.mark.django_db(transaction=True)  # the view checks the database from another thread
def test_healthz_is_ok_when_database_and_channel_layer_answer():
    response = Client().get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "channel_layer": "ok"}


@pytest.mark.django_db(transaction=True)  # the view checks the database from another thread
def test_healthz_is_503_when_the_channel_layer_is_down(settings):
    """A Redis layer on a port where nothing listens: the round trip really fails."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [CLOSED_REDIS_PORT]},
        }
    }

    response = Client().get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["channel_layer"] == "down"
    assert body["database"] == "ok"
    assert body["status"] != "ok"


@pytest.mark.django_db(transaction=True)  # the view checks the database from another thread
def test_healthz_needs_no_token():
    """Load balancers probe it without credentials."""
    response = Client().get("/healthz", HTTP_AUTHORIZATION="Bearer not-a-jwt")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


@pytest.mark.django_db(transaction=True)  # the view checks the database from another thread
async def test_healthz_answers_within_its_timeout_when_the_database_hangs(monkeypatch, settings):
    """Through the whole ASGI stack: the answer must not wait for the hung database call."""
    import threading
    import time

    from channels.testing import HttpCommunicator

    from crm_backend import health

    # crm_backend.asgi runs the deployment checks when first imported, and pytest-django runs
    # tests with DEBUG off: without a production-grade key, run alone, this file refused to load.
    settings.SECRET_KEY = "k" * 50
    from crm_backend.asgi import application

    unblock = threading.Event()
    monkeypatch.setattr(health, "CHECK_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(health, "_database_answers", lambda: unblock.wait(timeout=10))
    started = time.monotonic()
    try:
        response = await HttpCommunicator(
            application, "GET", "/healthz", headers=[(b"host", b"localhost")]
        ).get_response(timeout=10)
    finally:
        unblock.set()
    assert response["status"] == 503
    assert b'"database":"down"' in response["body"].replace(b" ", b"")
    assert time.monotonic() - started < 2


@pytest.mark.redis
async def test_healthz_round_trips_leave_no_subscription_behind(settings):
    """Probed every few seconds by a balancer: each probe used to leave its channel subscribed
    in Redis, and queued in the process, for good."""
    from channels.layers import get_channel_layer

    from chat.realtime.fanout import pubsub_loop_layer
    from crm_backend import health
    from tests.e2e.services import require_shared_redis, unique_prefix

    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [require_shared_redis()], "prefix": unique_prefix()},
        }
    }
    layer = get_channel_layer()
    for _ in range(3):
        await health._channel_layer_round_trip()
    assert pubsub_loop_layer(layer).channels == {}
    await layer.flush()
