"""No token in any log line of a real server: daphne's access log and uvicorn's, plain and JSON.

Browsers put credentials in the query string (`?token=<JWT>`, `?ticket=`); servers log request
paths with their query. Each test connects a real socket and makes real requests with them,
then reads everything the server printed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.request

import pytest
import websockets

from tests.e2e.conftest import http_json, login, room_id_by_name
from tests.e2e.server import Server, free_port, prepared_env, start_server

pytestmark = pytest.mark.e2e


def use_credentials_in_query_strings(server) -> list[str]:
    """A socket opened with ?token=<JWT>, one with ?ticket=, HTTP requests with both: the
    secrets that must not be logged."""
    token = login(server, "maria")
    ticket = http_json(f"{server.http_url}/api/chat/ws-ticket/", data={}, token=token)["ticket"]
    room_id = room_id_by_name(server, token, "Chat - Vendas")

    async def connect(query: str) -> None:
        async with websockets.connect(f"{server.ws_url}/ws/chat/{room_id}/?{query}") as socket:
            assert json.loads(await socket.recv())["type"] == "connection.established"

    asyncio.run(connect(f"token={token}"))
    asyncio.run(connect(f"ticket={ticket}"))
    refresh = "eyJhbGciOiJIUzI1NiJ9.refresh-looking.secret"
    for query in (f"token={token}", f"access={token}&refresh={refresh}&api_key=k-123"):
        with urllib.request.urlopen(f"{server.http_url}/healthz?{query}", timeout=10) as answer:
            assert answer.status == 200
    return [token, ticket, refresh, "k-123"]


def settled_log(server) -> str:
    time.sleep(0.5)  # the access log line of the last request is written after its answer
    return server.log()


def assert_no_secret(log: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in log, f"a credential reached the log:\n{log}"
    assert "token=[redacted]" in log, log
    assert "access=[redacted]&refresh=[redacted]&api_key=[redacted]" in log, log


@pytest.fixture
def prepared(tmp_path):
    return prepared_env(tmp_path), tmp_path


def test_daphne_access_log_has_no_token(prepared):
    env, tmp_path = prepared
    server = start_server(env, tmp_path / "daphne.log")
    try:
        secrets = use_credentials_in_query_strings(server)
        log = settled_log(server)
    finally:
        server.stop()
    assert '"GET /healthz?token=[redacted] HTTP' not in log  # daphne's line: no HTTP version
    assert "GET /healthz?token=[redacted]" in log, log
    assert_no_secret(log, secrets)


def test_json_logs_are_one_object_a_line_and_have_no_token(prepared):
    env, tmp_path = prepared
    server = start_server({**env, "CHAT_LOG_FORMAT": "json"}, tmp_path / "daphne-json.log")
    try:
        secrets = use_credentials_in_query_strings(server)
        log = settled_log(server)
    finally:
        server.stop()
    entries = [json.loads(line) for line in log.splitlines() if line.strip()]
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry), entry
    loggers = {entry["logger"] for entry in entries}
    assert {"daphne.access", "chat.realtime.consumers", "daphne.server"} <= loggers, loggers
    access = [entry for entry in entries if entry["logger"] == "daphne.access"]
    assert any(entry["request"] == "GET /healthz?token=[redacted]" for entry in access), access
    assert_no_secret(log, secrets)


# uvicorn's implementation on the websockets library (requirements-dev.txt has no wsproto).
UVICORN_OPTIONS = ("--ws", "websockets", "--lifespan", "off", "crm_backend.asgi:application")


class UvicornServer(Server):
    def command(self) -> list[str]:
        return [sys.executable, "-m", "uvicorn", "--port", str(self.port), *UVICORN_OPTIONS]


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_uvicorn_access_log_has_no_token(prepared, log_format):
    pytest.importorskip("uvicorn")
    env, tmp_path = prepared
    server = UvicornServer(
        port=free_port(),
        env={**env, "CHAT_LOG_FORMAT": log_format},
        log_path=tmp_path / f"uvicorn-{log_format}.log",
    )
    server.start()
    try:
        secrets = use_credentials_in_query_strings(server)
        log = settled_log(server)
    finally:
        server.stop()
    assert "WebSocket /ws/chat/" in log and "?token=[redacted]" in log, log  # uvicorn.error
    assert "GET /healthz?token=[redacted] HTTP/1.1" in log, log  # uvicorn.access
    assert_no_secret(log, secrets)
    if log_format == "json":
        access = [
            json.loads(line) for line in log.splitlines() if '"logger": "uvicorn.access"' in line
        ]
        assert access and all(entry["level"] == "INFO" for entry in access), log
