"""Through a real daphne, with a real WebSocket client: what a browser actually sees."""

import asyncio
import json
import uuid

import pytest
import websockets

from tests.e2e.conftest import login, query_db, room_id_by_name

pytestmark = pytest.mark.e2e


async def rejection_seen_by_client(url: str, **connect_kwargs) -> tuple[dict, int]:
    """The error frame and the close code a client receives (never a bare 1006)."""
    async with websockets.connect(url, **connect_kwargs) as ws:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    return frame, closed.value.rcvd.code


async def test_server_rejections_reach_the_client_with_reason_and_code(server):
    pedro = login(server, "pedro")
    vendas = room_id_by_name(server, login(server, "admin"), "Chat - Vendas")
    cases = [
        (f"/ws/chat/{vendas}/", {}, "authentication_required", 4401),
        (f"/ws/chat/{vendas}/?token=garbage", {}, "token_invalid", 4401),
        (f"/ws/chat/{vendas}/?token={pedro}", {}, "not_a_member", 4403),
        (f"/ws/chat/{uuid.uuid4()}/?token={pedro}", {}, "room_not_found", 4404),
        ("/ws/nowhere/", {}, "room_not_found", 4404),
        (
            f"/ws/chat/{vendas}/?token={pedro}",
            {"origin": "https://evil.example"},
            "origin_not_allowed",
            4403,
        ),
    ]
    for path, kwargs, code, close_code in cases:
        frame, received_close = await rejection_seen_by_client(server.ws_url + path, **kwargs)
        assert (frame["type"], frame["code"], received_close) == ("error", code, close_code), path
        assert frame["detail"]
    assert pedro.split(".")[2] not in server.log(), "tokens never reach the log"
    assert "WebSocket rejected: not_a_member" in server.log()


async def test_server_public_room_broadcasts_between_two_clients(server):
    text = f"olá público {uuid.uuid4()}"
    async with (
        websockets.connect(f"{server.ws_url}/ws/chat/teste/?username=Ana") as first,
        websockets.connect(f"{server.ws_url}/ws/chat/teste/") as second,
    ):
        for ws in (first, second):
            assert json.loads(await ws.recv())["type"] == "connection.established"
        await first.send(json.dumps({"message": text}))
        frame = await next_chat_message(second, text)
    assert frame["user"] == {"id": None, "username": "Ana"}


async def test_server_two_members_chat_and_the_message_is_stored(server):
    admin, maria = login(server, "admin"), login(server, "maria")
    room_id = room_id_by_name(server, admin, "Chat - Gerência")
    text = f"reunião às 15h {uuid.uuid4()}"
    async with (
        websockets.connect(f"{server.ws_url}/ws/chat/{room_id}/?token={admin}") as sender,
        websockets.connect(
            f"{server.ws_url}/ws/chat/{room_id}/",
            additional_headers={"Authorization": f"Bearer {maria}"},
        ) as receiver,
    ):
        for ws in (sender, receiver):
            assert json.loads(await ws.recv())["type"] == "connection.established"
        await sender.send(json.dumps({"type": "chat.message", "message": text, "client_id": "e2e"}))
        acknowledged = await next_chat_message(sender, text)
        received = await next_chat_message(receiver, text)
    assert received == acknowledged
    assert received["user"]["username"] == "admin"
    rows = query_db(
        server,
        "SELECT m.id, u.username FROM chat_message m JOIN accounts_user u ON u.id = m.author_id "
        "WHERE m.text = ? AND m.room_id = ?",
        text,
        room_id.replace("-", ""),
    )
    assert rows == [(received["id"], "admin")]


async def test_server_oversized_and_binary_frames_are_closed_by_the_consumer(server):
    token = login(server, "admin")
    room_id = room_id_by_name(server, token, "Chat - Gerência")
    url = f"{server.ws_url}/ws/chat/{room_id}/?token={token}"
    for payload, code, close_code in [
        (json.dumps({"message": "a" * 200 * 1024}), "frame_too_big", 1009),
        (b"\x00binary", "binary_not_supported", 1003),
    ]:
        async with websockets.connect(url, max_size=None) as ws:
            await ws.recv()
            await ws.send(payload)
            frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
        assert (frame["code"], closed.value.rcvd.code) == (code, close_code)


async def next_chat_message(ws, text: str) -> dict:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if frame.get("type") == "chat.message" and frame["message"] == text:
            return frame


async def test_without_the_speed_adapters_daphne_serves_the_same_chat(tmp_path):
    """The library's own path (what an adapter falls back to on another library version):
    every speed adapter off, a real daphne still chats, recovers and says why it refuses."""
    from tests.e2e.clients import ChatClient
    from tests.e2e.conftest import login, room_id_by_name
    from tests.e2e.server import seeded_server

    off = "daphne_shared_options,request_threads,broadcast_frames"
    server = seeded_server(tmp_path, CHAT_ADAPTERS_OFF=off)
    try:
        admin, maria = login(server, "admin"), login(server, "maria")
        room = room_id_by_name(server, admin, "Chat - Gerência")
        sender = await ChatClient.connect(server, room, admin)
        receiver = await ChatClient.connect(server, room, maria)
        await sender.send_message("sem adaptadores")
        assert (await receiver.next_message())["message"] == "sem adaptadores"
        error, code = await ChatClient.refused(server, room, "not-a-token")
        assert (error["code"], code) == ("token_invalid", 4401)
        await sender.close()
        await receiver.close()
    finally:
        server.stop()
    assert "adapter broadcast_frames switched off" in server.log_path.read_text()
