"""A client that stops reading, through a real daphne: closed with 1013, never silently short."""

import asyncio
import json
import socket

import pytest
import websockets

from tests.e2e.conftest import login, room_id_by_name
from tests.e2e.server import seeded_server

pytestmark = pytest.mark.e2e

FLOOD = 1500
TEXT = "x" * 3900  # about 4 KB a frame: 6 MB in all, more than the kernel buffers hold


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = seeded_server(
        tmp_path_factory.mktemp("slow-receiver"),
        CHAT_SLOW_RECEIVER_SECONDS="1",
        CHAT_RATE_LIMIT_PER_SECOND="100000",
        CHAT_RATE_LIMIT_BURST="100000",
        CHAT_USER_RATE_LIMIT_PER_SECOND="100000",
        CHAT_USER_RATE_LIMIT_BURST="100000",
        CHAT_LOG_LEVEL="WARNING",
    )
    yield server
    server.stop()


async def connect_reading_little(url: str):
    """A client whose kernel takes 4 KB and whose library queues one frame: it stops reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0])))
    sock.setblocking(False)
    return await websockets.connect(url, sock=sock, max_queue=1, max_size=None)


async def wait_for_log(server, text: str, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while text not in server.log():
        assert asyncio.get_running_loop().time() < deadline, f"no {text!r} in the server log"
        await asyncio.sleep(0.05)


async def test_server_closes_a_client_that_stopped_reading_with_1013(server):
    """The client reads nothing while its room floods; once the server gives up on it, it
    reads what was queued: in order, then `service_unavailable` and 1013, and nothing more.
    (It must then read within autobahn's 1 s close handshake, or daphne drops the TCP
    connection: a client that never reads again cannot be told anything.)"""
    admin, maria = login(server, "admin"), login(server, "maria")
    room = room_id_by_name(server, admin, "Chat - Gerência")
    url = f"{server.ws_url}/ws/chat/{room}/?token="
    slow = await connect_reading_little(url + maria)
    async with websockets.connect(url + admin, max_size=None) as sender:
        assert json.loads(await sender.recv())["type"] == "connection.established"

        async def flood() -> None:  # paced, and the sender reads its own copies: it keeps up
            for number in range(FLOOD):
                await sender.send(json.dumps({"message": f"{number}|{TEXT}"}))
                await asyncio.sleep(0.004)

        async def read_own_copies() -> None:
            count = FLOOD
            while count:
                frame = json.loads(await asyncio.wait_for(sender.recv(), 30))
                count -= frame["type"] == "chat.message"

        sending = asyncio.gather(flood(), read_own_copies())
        await wait_for_log(server, "slow receiver: user=maria", timeout=30)

        numbers, error = [], None
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                frame = json.loads(await asyncio.wait_for(slow.recv(), 10))
                if frame["type"] == "chat.message":
                    numbers.append(int(frame["message"].split("|")[0]))
                elif frame["type"] == "error":
                    error = frame
        await sending

    assert closed.value.rcvd is not None, "the close frame arrived (not a dropped connection)"
    assert closed.value.rcvd.code == 1013
    assert error["code"] == "service_unavailable"
    assert numbers == list(range(len(numbers))), "what it got came in order, with no gap"
    assert len(numbers) < FLOOD, "it was closed instead of being buffered for"
