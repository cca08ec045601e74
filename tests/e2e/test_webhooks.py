"""Webhooks end to end: a receiver this test starts gets every event exactly once (deduped by
its delivery id) with a valid signature, across a killed worker and a killed, restarted
daphne, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter

import psycopg
import pytest

from tests.e2e.clients import ChatClient
from tests.e2e.conftest import login, ok, room_id_by_name
from tests.e2e.server import PROJECT_DIR, prepared_env, start_server
from tests.e2e.services import SharedPostgresDatabase
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.e2e

ROOM = "Chat - Vendas"  # admin (room admin), maria, joao
WEBHOOK_ENV = {
    "CHAT_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32",  # the receiver below
    "CHAT_WEBHOOK_TIMEOUT_SECONDS": "1",
    "CHAT_WEBHOOK_BACKOFF_SECONDS": "0.2",
    "CHAT_WEBHOOK_BACKOFF_MAX_SECONDS": "1",
    "CHAT_RATE_LIMIT_PER_SECOND": "1000",
    "CHAT_RATE_LIMIT_BURST": "1000",
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db.sqlite3'}"
        return
    database = SharedPostgresDatabase().create()
    yield database.url
    database.drop()


api = ok  # every call here must succeed


def undelivered(database_url: str) -> tuple[int, int]:
    """(deliveries stored, of which not delivered yet), read from the database itself."""
    sql = "SELECT COUNT(*), SUM(CASE WHEN status = 'delivered' THEN 0 ELSE 1 END) FROM "
    sql += "webhooks_webhookdelivery"
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as connection:
            total, pending = connection.execute(sql).fetchone()
    else:
        with psycopg.connect(database_url) as connection:
            total, pending = connection.execute(sql).fetchone()
    return total, pending or 0


class Worker:
    def __init__(self, env: dict, log_path) -> None:
        self.env, self.log_path, self.process = env, log_path, None

    def start(self) -> None:
        self.process = subprocess.Popen(
            # Two at a time: a killed worker's claim lapses after 2 x 2 x 1 + 5 s.
            [sys.executable, "manage.py", "deliver_webhooks", "--interval", "0.1", "--batch", "2"],
            cwd=PROJECT_DIR,
            env=self.env,
            stdout=open(self.log_path, "ab"),
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class FlakyReceiver(Receiver):
    """Answers 500 to the first attempt of every third delivery, and holds one request (the
    `hold_at`-th) until released, so that a test can kill the sender in the middle of it."""

    def __init__(self, hold_at: int) -> None:
        super().__init__()
        self.hold_at, self.held, self.release = hold_at, threading.Event(), threading.Event()
        self.answer = self.decide
        self.seen: list[str] = []

    def decide(self, request) -> int:
        delivery = request.headers["X-Chat-Delivery"]
        with self.lock:
            first = delivery not in self.seen
            if first:
                self.seen.append(delivery)
            hold = len(self.requests) == self.hold_at
        if hold:
            self.held.set()
            self.release.wait(15)
            return 200  # processed; the sender is gone and never hears it
        if first and self.seen.index(delivery) % 3 == 2:
            return 500
        return 200


async def send_messages(server, room_id: str, token: str, texts: list[str]) -> list[dict]:
    client = await ChatClient.connect(server, room_id, token)
    acks = []
    for text in texts:
        await client.send_message(text)
        acks.append(await client.next_message())
    await client.close()
    return acks


async def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_every_event_reaches_the_receiver_exactly_once_across_restarts(
    tmp_path, database_url
):
    env = prepared_env(tmp_path, DATABASE_URL=database_url, **WEBHOOK_ENV)
    server = start_server(env, tmp_path / "daphne.log")
    worker = Worker(env, tmp_path / "worker.log")
    receiver = FlakyReceiver(hold_at=6)
    try:
        await _exercise(server, worker, receiver, database_url)
    finally:
        receiver.release.set()
        worker.stop()
        server.stop()
        receiver.stop()


async def _exercise(server, worker, receiver, database_url) -> None:
    admin = login(server, "admin")
    room_id = room_id_by_name(server, admin, ROOM)
    hooks = f"/api/chat/rooms/{room_id}/webhooks/"
    created = api(server, "POST", hooks, admin, {"url": receiver.url})
    receiver.secret = created["secret"]
    worker.start()

    # Before the restart: messages over the socket, an edit, a delete and a member over REST.
    first = await send_messages(server, room_id, admin, [f"antes {n}" for n in range(8)])
    messages = f"/api/chat/rooms/{room_id}/messages/"
    api(server, "PATCH", f"{messages}{first[0]['id']}/", admin, {"message": "antes 0, editada"})
    api(server, "DELETE", f"{messages}{first[1]['id']}/", admin)
    assert await asyncio.to_thread(receiver.held.wait, 30), "the worker never reached request 6"

    # The worker dies in the middle of a request; daphne dies too and comes back.
    worker.kill()
    server.kill()
    receiver.release.set()
    server.start()
    admin = login(server, "admin")
    second = await send_messages(server, room_id, admin, [f"depois {n}" for n in range(6)])
    rest = api(server, "POST", messages, admin, {"message": "pelo REST"})
    members = f"/api/chat/rooms/{room_id}/members/"
    carlos = _user_id(server, admin, "carlos")
    api(server, "POST", members, admin, {"user_id": carlos})
    api(server, "DELETE", f"{members}{carlos}/", admin)
    worker.start()

    expected = len(first) + len(second) + 1 + 2 + 2  # messages, edit + delete, member add + remove
    await wait_until(lambda: undelivered(database_url) == (expected, 0), 90, "every delivery")
    await wait_until(lambda: len(receiver.by_delivery(accepted=True)) == expected, 10, "receipts")
    _check_receipts(receiver, first, second, rest, carlos)


def _user_id(server, token: str, username: str) -> int:
    # The community room has every demo user: its members list names them.
    community = room_id_by_name(server, token, "Chat - Gerência")
    room = api(server, "GET", f"/api/chat/rooms/{community}/", token)
    return next(m["id"] for m in room["members"] if m["username"] == username)


def _check_receipts(receiver, first, second, rest, carlos) -> None:
    assert all(request.signature_ok for request in receiver.requests), "a bad signature"
    kept = {}  # what a deduplicating receiver keeps: the first accepted request of each id
    for delivery_id, requests in receiver.by_delivery(accepted=True).items():
        assert len({r.body for r in requests}) == 1  # a redelivery is the very same body
        body = requests[0].json
        assert body["id"] == delivery_id
        kept[delivery_id] = body
    repeats = Counter(r.headers["X-Chat-Delivery"] for r in receiver.requests)
    assert max(repeats.values()) >= 2, "no retry happened: the test proved nothing"
    accepted_twice = Counter(
        r.headers["X-Chat-Delivery"] for r in receiver.requests if r.status == 200
    )
    assert max(accepted_twice.values()) >= 2, "the request held when the worker died came back"
    created = sorted(b["data"]["id"] for b in kept.values() if b["event"] == "message.created")
    sent = sorted([m["id"] for m in first] + [m["id"] for m in second] + [rest["id"]])
    assert created == sent  # every message once, none twice
    events = Counter(b["event"] for b in kept.values())
    assert events == {
        "message.created": len(sent),
        "message.edited": 1,
        "message.deleted": 1,
        "member.added": 1,
        "member.removed": 1,
    }
    (edited,) = [b for b in kept.values() if b["event"] == "message.edited"]
    assert edited["data"]["message"] == "antes 0, editada"
    (added,) = [b for b in kept.values() if b["event"] == "member.added"]
    assert added["data"]["user"]["id"] == carlos
