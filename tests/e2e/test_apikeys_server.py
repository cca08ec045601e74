"""API keys through real daphne processes: a bot's socket, and its key revoked from another
process (`manage.py revoke_api_key`) closing it — at once on every process with Redis, within
CHAT_ACCOUNT_CHECK_SECONDS on the in-memory layer."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import websockets

from tests.e2e.clients import ChatClient
from tests.e2e.conftest import login, room_id_by_name
from tests.e2e.server import manage, prepared_env, start_server
from tests.e2e.services import SharedPostgresDatabase, require_shared_redis, unique_prefix

pytestmark = pytest.mark.e2e


async def key_socket(server, room_id: str, key: str) -> ChatClient:
    ws = await websockets.connect(
        f"{server.ws_url}/ws/chat/{room_id}/",
        additional_headers={"Authorization": f"Api-Key {key}"},
    )
    return ChatClient(ws)


async def key_joined(server, room_id: str, key: str) -> ChatClient:
    client = await key_socket(server, room_id, key)
    client.established = await client.next_frame()
    assert client.established["type"] == "connection.established", client.established
    return client


def create_key(env: dict, room_id: str) -> str:
    return manage(env, "create_api_key", "crm-bot", "--rooms", room_id, "--name", "e2e").strip()


@pytest.fixture(params=["sqlite", "postgres"])
def one_server(request, tmp_path):
    """One daphne on the in-memory layer, with a 1 s account check, on either database."""
    database = SharedPostgresDatabase().create() if request.param == "postgres" else None
    overrides = {"CHAT_ACCOUNT_CHECK_SECONDS": "1"}
    if database is not None:
        overrides["DATABASE_URL"] = database.url
    server = start_server(prepared_env(tmp_path, **overrides), tmp_path / "daphne.log")
    yield server
    server.stop()
    if database is not None:
        database.drop()


async def test_a_bots_socket_through_daphne(one_server):
    server = one_server
    admin = login(server, "admin")
    sales = room_id_by_name(server, admin, "Chat - Vendas")
    management = room_id_by_name(server, admin, "Chat - Gerência")
    key = create_key(server.env, sales)
    watcher = await ChatClient.connect(server, sales, admin)

    bot = await key_joined(server, sales, key)
    assert bot.established["user"]["is_bot"] is True
    await bot.send_message("pedido 42 faturado")
    received = await watcher.next_message()
    assert (received["message"], received["user"]["is_bot"]) == ("pedido 42 faturado", True)

    refused = await key_socket(server, management, key)
    error, code = await refused.closed_with()
    assert (error["code"], code) == ("not_a_member", 4403)

    # Another process on the in-memory layer: the account check closes it (1 s here).
    manage(server.env, "revoke_api_key", key.partition(".")[0])
    error, code = await bot.closed_with(timeout=5)
    assert (error["code"], code) == ("api_key_revoked", 4401)
    again = await key_socket(server, sales, key)
    error, code = await again.closed_with()
    assert (error["code"], code) == ("api_key_revoked", 4401)
    assert key not in server.log() and key.partition(".")[2] not in server.log()
    await watcher.close()


@pytest.fixture
def redis_cluster(tmp_path):
    """Processes A and B on one PostgreSQL database and one Redis; the account check made too
    slow (60 s) to be what closes a socket here."""
    redis_url = require_shared_redis()
    database = SharedPostgresDatabase().create()
    env = prepared_env(
        tmp_path,
        DATABASE_URL=database.url,
        REDIS_URL=redis_url,
        CHANNEL_LAYER_PREFIX=unique_prefix(),
        CHAT_ACCOUNT_CHECK_SECONDS="60",
    )
    servers = [start_server(env, tmp_path / f"daphne-{n}.log") for n in range(2)]
    yield servers
    for server in servers:
        server.stop()
    database.drop()


@pytest.mark.redis
@pytest.mark.postgres
async def test_a_revoked_keys_sockets_close_at_once_on_every_process(redis_cluster):
    a, b = redis_cluster
    admin = login(a, "admin")
    room = room_id_by_name(a, admin, "Chat - Vendas")
    key, other_key = create_key(a.env, room), create_key(a.env, room)
    on_a, on_b = await key_joined(a, room, key), await key_joined(b, room, key)
    kept = await key_joined(b, room, other_key)

    started = time.monotonic()
    manage(a.env, "revoke_api_key", key)  # a third process: only Redis reaches A and B
    closes = await asyncio.gather(on_a.closed_with(), on_b.closed_with())
    waited = time.monotonic() - started
    assert [(error["code"], code) for error, code in closes] == [("api_key_revoked", 4401)] * 2
    assert waited < 10, f"{waited:.1f} s: not the 60 s account check"

    await kept.ws.send(json.dumps({"type": "ping"}))
    assert (await kept.next_frame())["type"] == "pong", "the account's other key stays"
    await kept.close()
