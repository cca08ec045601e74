"""Faults injected for real: Redis and PostgreSQL instances of our own, stopped and restarted."""

import asyncio
import json
import time
import urllib.error
import urllib.request

import pytest

from tests.e2e.clients import ChatClient, history_after
from tests.e2e.conftest import http_json, login, room_id_by_name
from tests.e2e.server import seeded_server
from tests.e2e.services import ThrowawayPostgres, ThrowawayRedis, unique_prefix

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


@pytest.fixture
def redis_instance(tmp_path):
    instance = ThrowawayRedis(tmp_path / "redis").start()
    yield instance
    instance.stop()


@pytest.fixture
def server_on_own_redis(tmp_path, redis_instance):
    server = seeded_server(
        tmp_path,
        REDIS_URL=redis_instance.url,
        CHANNEL_LAYER_PREFIX=unique_prefix(),
        CHAT_LAYER_CHECK_SECONDS="2",
    )
    yield server
    server.stop()


def healthz_status(server) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{server.http_url}/healthz", timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


async def test_redis_down_http_works_sockets_fail_fast_and_nothing_is_lost(
    server_on_own_redis, redis_instance
):
    server = server_on_own_redis
    admin, maria = login(server, "admin"), login(server, "maria")
    room = room_id_by_name(server, admin, "Chat - Gerência")
    sender = await ChatClient.connect(server, room, admin)
    listener = await ChatClient.connect(server, room, maria)
    await sender.send_message("antes")
    await sender.next_message()
    last_seen = (await listener.next_message())["id"]

    redis_instance.stop()
    await sender.send_message("durante a queda")
    acknowledged = await sender.next_frame()
    assert acknowledged["message"] == "durante a queda", "stored, and the sender is told"
    error, code = await sender.closed_with()
    assert (error["code"], code) == ("service_unavailable", 1013)
    error, code = await listener.closed_with(timeout=15)
    assert (error["code"], code) == ("service_unavailable", 1013), "no deaf sockets"

    started = time.monotonic()
    login(server, "admin")  # HTTP keeps working
    assert [m["message"] for m in history_after(server, admin, room, last_seen)] == [
        "durante a queda"
    ]
    error, code = await ChatClient.refused(server, room, admin)
    assert (error["code"], code) == ("service_unavailable", 1013)
    assert time.monotonic() - started < 10, "refusals are prompt, never a hang"
    assert healthz_status(server)[0] == 503

    redis_instance.start()
    back = await ChatClient.connect(server, room, maria)
    recovered = history_after(server, maria, room, last_seen)
    assert [m["message"] for m in recovered] == ["durante a queda"]
    other = await ChatClient.connect(server, room, admin)
    await other.send_message("depois")
    assert (await back.next_message())["message"] == "depois"
    assert healthz_status(server)[0] == 200
    await back.close()
    await other.close()


async def test_redis_restart_closes_open_sockets_then_chat_resumes(
    server_on_own_redis, redis_instance
):
    server = server_on_own_redis
    admin = login(server, "admin")
    room = room_id_by_name(server, admin, "Chat - Gerência")
    client = await ChatClient.connect(server, room, admin)

    redis_instance.stop()
    redis_instance.start()  # same port, memory wiped

    error, code = await client.closed_with(timeout=15)
    assert (error["code"], code) == ("service_unavailable", 1013)
    again = await ChatClient.connect(server, room, admin)
    await again.send_message("de volta")
    assert (await again.next_message())["message"] == "de volta"
    await again.close()


@pytest.mark.postgres
async def test_database_down_answers_not_persisted_and_recovers(tmp_path):
    postgres = ThrowawayPostgres().init().start()
    server = seeded_server(tmp_path, DATABASE_URL=postgres.url)
    try:
        admin, maria = login(server, "admin"), login(server, "maria")
        room = room_id_by_name(server, admin, "Chat - Gerência")
        sender = await ChatClient.connect(server, room, admin)
        listener = await ChatClient.connect(server, room, maria)

        postgres.stop()
        await sender.send_message("sem banco")
        frame = await sender.next_frame(timeout=15)
        assert (frame["type"], frame["code"]) == ("error", "not_persisted")
        with pytest.raises(asyncio.TimeoutError):
            await listener.next_frame(timeout=1)
        status, body = healthz_status(server)
        assert (status, body["database"]) == (503, "down")

        postgres.start()
        await sender.send_message("com banco")
        stored = await sender.next_message(timeout=15)
        assert stored["message"] == "com banco"
        assert (await listener.next_message())["id"] == stored["id"]
        page = http_json(f"{server.http_url}/api/chat/rooms/{room}/messages/", token=admin)
        assert [m["message"] for m in page["results"]] == ["com banco"]
        assert healthz_status(server)[0] == 200
    finally:
        server.stop()
        postgres.remove()
