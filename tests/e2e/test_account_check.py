"""Accounts changed where no event reaches the server: a real daphne still closes the sockets.

`manage.py shell` (its post_save event goes to its own in-memory layer, never to daphne) or
plain SQL deactivate a user or delete a membership; the server's periodic account check
(CHAT_ACCOUNT_CHECK_SECONDS) closes the affected sockets with the matching rejection within
that time, on the in-memory layer as on Redis.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from tests.e2e.clients import ChatClient
from tests.e2e.conftest import login, room_id_by_name
from tests.e2e.server import manage, seeded_server
from tests.e2e.services import require_shared_redis, unique_prefix

pytestmark = pytest.mark.e2e

CHECK_SECONDS = 1.0
# The check's period, plus its query and the close frames' way out, on a loaded machine.
BOUND_SECONDS = CHECK_SECONDS + 2.0
GERENCIA, VENDAS = "Chat - Gerência", "Chat - Vendas"


@pytest.fixture(scope="module", params=["in-memory", "redis"])
def server(request, tmp_path_factory):
    layer = {} if request.param == "in-memory" else {"REDIS_URL": require_shared_redis()}
    if layer:
        layer["CHANNEL_LAYER_PREFIX"] = unique_prefix()
    server = seeded_server(
        tmp_path_factory.mktemp(f"account-check-{request.param}"),
        CHAT_ACCOUNT_CHECK_SECONDS=str(CHECK_SECONDS),
        **layer,
    )
    yield server
    server.stop()


def run_sql(server, sql: str, *params) -> int:
    path = server.env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path, timeout=10) as connection:
        changed = connection.execute(sql, params).rowcount
    connection.close()
    return changed


async def closed_within(client: ChatClient, seconds: float) -> tuple[dict | None, int | None]:
    started = time.monotonic()
    error, code = await client.closed_with(timeout=seconds + 5)
    assert time.monotonic() - started <= seconds, f"closed after {time.monotonic() - started:.1f}s"
    return error, code


async def still_open(client: ChatClient) -> None:
    await client.ws.send('{"type": "ping"}')
    assert (await client.next_frame())["type"] == "pong"


async def test_user_deactivated_from_manage_py_shell_is_closed_on_every_room(server):
    admin, joao = login(server, "admin"), login(server, "joao")
    gerencia, vendas = (room_id_by_name(server, admin, name) for name in (GERENCIA, VENDAS))
    sockets = [await ChatClient.connect(server, room, joao) for room in (gerencia, vendas)]
    bystander = await ChatClient.connect(server, gerencia, admin)

    await asyncio.to_thread(
        manage,
        server.env,
        "shell",
        "-c",
        "from accounts.models import User; u = User.objects.get(username='joao'); "
        "u.is_active = False; u.save()",
    )

    for socket in sockets:
        error, code = await closed_within(socket, BOUND_SECONDS)
        assert (error["code"], code) == ("user_inactive", 4401), (error, code)
    await still_open(bystander)
    await bystander.close()


async def test_user_deactivated_by_sql_is_closed(server):
    admin, ana = login(server, "admin"), login(server, "ana")
    socket = await ChatClient.connect(server, room_id_by_name(server, admin, GERENCIA), ana)

    assert run_sql(server, "UPDATE accounts_user SET is_active = 0 WHERE username = 'ana'") == 1

    error, code = await closed_within(socket, BOUND_SECONDS)
    assert (error["code"], code) == ("user_inactive", 4401)


async def test_membership_deleted_by_sql_closes_that_room_only(server):
    admin, maria = login(server, "admin"), login(server, "maria")
    gerencia, vendas = (room_id_by_name(server, admin, name) for name in (GERENCIA, VENDAS))
    removed = await ChatClient.connect(server, vendas, maria)
    kept = await ChatClient.connect(server, gerencia, maria)

    deleted = run_sql(
        server,
        "DELETE FROM chat_membership WHERE room_id = ? AND user_id = "
        "(SELECT id FROM accounts_user WHERE username = 'maria')",
        vendas.replace("-", ""),
    )
    assert deleted == 1

    error, code = await closed_within(removed, BOUND_SECONDS)
    assert (error["code"], code) == ("removed_from_room", 4403)
    await asyncio.sleep(CHECK_SECONDS * 1.5)  # another check has run: the other room stays
    await still_open(kept)
    await kept.close()
