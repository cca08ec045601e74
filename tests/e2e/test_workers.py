"""manage.py chat_serve --workers 2: two daphne workers on ONE port, one Redis, one PostgreSQL.

Which worker a socket landed on is read from /proc (which worker process holds the server end
of the connection), so production code carries no test hook.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from tests.e2e.clients import AMBIENT_TYPES, ChatClient
from tests.e2e.conftest import login, ok, room_id_by_name
from tests.e2e.server import PROJECT_DIR, Server, free_port, prepared_env, server_env
from tests.e2e.services import (
    SharedPostgresDatabase,
    require_shared_redis,
    unique_prefix,
    wait_until,
)
from tests.e2e.test_scale_out import FAST_LIMITS

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.postgres]

ROOM = "Chat - Gerência"
CHAT_SERVE = [sys.executable, "manage.py", "chat_serve"]
LISTENING = re.compile(r"worker (\d+) pid (\d+) listening on")


@dataclass
class Supervised(Server):
    """chat_serve and its workers, seen from outside."""

    workers: int = 2

    def command(self) -> list[str]:
        return [*CHAT_SERVE, f"--workers={self.workers}", f"--port={self.port}"]

    def start(self, timeout: float = 30.0) -> None:
        super().start(timeout)
        if self.workers > 1:  # one worker is daphne itself (exec), with no supervisor to log
            wait_until(lambda: len(self.worker_pids()) == self.workers, timeout=timeout)

    def worker_pids(self) -> dict[int, int]:
        """Worker index -> pid of its latest start, from the supervisor's log lines."""
        return {int(i): int(pid) for i, pid in LISTENING.findall(self.log())}

    def worker_of(self, client: ChatClient) -> int:
        """The pid of the worker holding the server end of this client's connection."""
        client_port = client.ws.local_address[1]
        inode = server_side_inode(self.port, client_port)
        for pid in self.worker_pids().values():
            if f"socket:[{inode}]" in socket_links(pid):
                return pid
        raise AssertionError(f"no worker holds the connection from port {client_port}")


def server_side_inode(server_port: int, client_port: int) -> str:
    with open("/proc/net/tcp") as table:
        for line in table.read().splitlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if local.endswith(f":{server_port:04X}") and remote.endswith(f":{client_port:04X}"):
                return inode
    raise AssertionError(f"no server-side connection for client port {client_port}")


def socket_links(pid: int) -> set[str]:
    links = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            links.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass  # closed meanwhile
    return links


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    require_shared_redis()
    database = SharedPostgresDatabase().create()
    tmp_dir = tmp_path_factory.mktemp("workers")
    env = prepared_env(
        tmp_dir,
        DATABASE_URL=database.url,
        REDIS_URL=require_shared_redis(),
        CHANNEL_LAYER_PREFIX=unique_prefix(),
        **FAST_LIMITS,
    )
    served = Supervised(free_port(), env, tmp_dir / "chat_serve.log", workers=2)
    served.start()
    yield served
    if served.process.poll() is None:
        served.process.kill()  # the supervisor only; its workers die on their next write
    database.drop()


async def one_on_each_worker(served, room, token, ignore=AMBIENT_TYPES) -> dict[int, ChatClient]:
    """Connect until the user has a socket on every worker (the kernel spreads by hash)."""
    by_worker, spare = {}, []
    for _ in range(30):
        client = await ChatClient.connect(served, room, token, ignore)
        worker = served.worker_of(client)
        (spare if worker in by_worker else by_worker.setdefault(worker, [])).append(client)
        if len(by_worker) == len(served.worker_pids()):
            break
    for client in spare:
        await client.close()
    assert len(by_worker) == 2, f"30 sockets all landed on {list(by_worker)}"
    return {worker: clients[0] for worker, clients in by_worker.items()}


async def test_members_on_different_workers_chat_sync_and_see_presence(served):
    admin, maria = login(served, "admin"), login(served, "maria")
    room = room_id_by_name(served, admin, ROOM)
    admins = await one_on_each_worker(served, room, admin, ignore={"typing", "read"})
    first, second = sorted(admins)
    on_first = admins[first]
    maria_client = None
    while maria_client is None:  # maria on the other worker than admin's first socket
        candidate = await ChatClient.connect(served, room, maria)
        if served.worker_of(candidate) == second:
            maria_client = candidate
        else:
            await candidate.close()

    presence = await on_first.next_frame()
    while presence["type"] != "presence" or presence["user"]["username"] != "maria":
        presence = await on_first.next_frame()
    assert presence["status"] == "online"
    online = ok(served, "GET", f"/api/chat/rooms/{room}/presence/", admin)["online"]
    assert {"admin", "maria"} <= {user["username"] for user in online}

    await on_first.send_message("do worker 1")
    assert (await maria_client.next_message())["message"] == "do worker 1"
    await maria_client.send_message("do worker 2")
    got = {(await on_first.next_message())["message"] for _ in range(2)}  # its ack, then maria's
    assert got == {"do worker 1", "do worker 2"}

    last_seen = (await admins[second].next_message())["id"]  # admin's other socket saw it
    await maria_client.close()
    await on_first.send_message("while maria was away")
    # Its ack: stored, so a sync on the other worker must find it (not a race with the INSERT).
    assert (await on_first.next_message())["message"] == "while maria was away"
    back = await ChatClient.connect(served, room, maria)
    missed = (await back.sync(after=last_seen))["messages"]
    assert [m["message"] for m in missed][-2:] == ["do worker 2", "while maria was away"]
    for client in (*admins.values(), back):
        await client.close()


async def test_a_killed_worker_is_restarted_and_its_clients_reconnect(served):
    admin = login(served, "admin")
    room = room_id_by_name(served, admin, ROOM)
    clients = await one_on_each_worker(served, room, admin)
    index, victim = next(iter(served.worker_pids().items()))
    os.kill(victim, signal.SIGKILL)
    # Opened while the worker is down: those hashed to its socket wait in the backlog the
    # supervisor keeps open, and are served once it is back; none is refused.
    meanwhile = await asyncio.gather(*(ChatClient.connect(served, room, admin) for _ in range(6)))

    _, code = await clients[victim].closed_with()
    assert code is None  # 1006: nothing closed it
    wait_until(lambda: served.worker_pids()[index] != victim, timeout=10)
    assert f"pid {victim} died unexpectedly" in served.log()
    replacement = served.worker_pids()[index]

    others = [pid for pid in clients if pid != victim]
    survivor = clients[others[0]]
    await survivor.send_message("o outro worker segue")
    assert (await survivor.next_message())["message"] == "o outro worker segue"
    again = await one_on_each_worker(served, room, admin)
    assert replacement in again
    waited = sum(served.worker_of(client) == replacement for client in meanwhile)
    print(f"{waited} of {len(meanwhile)} sockets opened meanwhile waited for the replacement")
    for client in (survivor, *again.values(), *meanwhile):
        await client.close()


async def test_sigterm_closes_every_socket_with_1001_and_exits_0(served):
    admin = login(served, "admin")
    room = room_id_by_name(served, admin, ROOM)
    clients = await one_on_each_worker(served, room, admin)
    started = time.monotonic()
    served.process.send_signal(signal.SIGTERM)
    for client in clients.values():
        assert (await client.closed_with())[1] == 1001
    assert served.process.wait(timeout=20) == 0
    assert time.monotonic() - started < 15
    assert not any(map(alive, served.worker_pids().values()))  # the supervisor reaped them


def alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def test_more_than_one_worker_without_redis_is_refused(tmp_path):
    env = server_env(tmp_path)  # no REDIS_URL: refused before the database is touched
    result = subprocess.run(
        [*CHAT_SERVE, "--workers=2", f"--port={free_port()}"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "needs REDIS_URL" in result.stderr and "cannot cross processes" in result.stderr


def test_one_worker_is_plain_daphne(tmp_path):
    """--workers 1 execs daphne itself: same process, same endpoint as scripts/dev."""
    served = Supervised(free_port(), prepared_env(tmp_path), tmp_path / "one.log", workers=1)
    try:
        served.start()
        with open(f"/proc/{served.process.pid}/cmdline", "rb") as cmdline:
            argv = cmdline.read().split(b"\0")
        assert b"daphne" in argv
        assert f"tcp:port={served.port}:interface=127.0.0.1:backlog=1024".encode() in argv
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=15) == 0
    finally:
        served.process.kill()
