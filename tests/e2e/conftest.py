import json
import sqlite3
import urllib.error
import urllib.request

import pytest

from tests.e2e.server import DEMO_PASSWORD, seeded_server

# Debian's chromium (scripts/test installs it), never a browser download. Without the
# background-networking flags it keeps trying this machine's closed network.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module (Playwright's sync API)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One seeded daphne (SQLite file, in-memory layer) shared by the end-to-end tests."""
    server = seeded_server(tmp_path_factory.mktemp("e2e"))
    yield server
    server.stop()


def http_json(url: str, *, data: dict | None = None, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps(data).encode() if data is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=10) as r:
        return json.load(r)


def call(server, method: str, path: str, token: str, data: dict | None = None):
    """(status, JSON body or None) of one REST call, errors included."""
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(
        f"{server.http_url}{path}",
        body,
        {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def ok(server, method: str, path: str, token: str, data: dict | None = None):
    """The JSON body of a REST call that must succeed."""
    status, body = call(server, method, path, token, data)
    assert status < 300, (status, body)
    return body


def login(server, username: str, password: str = DEMO_PASSWORD) -> str:
    return http_json(
        f"{server.http_url}/api/auth/token/", data={"username": username, "password": password}
    )["access"]


def room_id_by_name(server, token: str, name: str) -> str:
    rooms = http_json(f"{server.http_url}/api/chat/rooms/", token=token)
    return next(room["id"] for room in rooms if room["name"] == name)


def query_db(server, sql: str, *params):
    """Read the server's database directly: what was really stored."""
    path = server.env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        return connection.execute(sql, params).fetchall()
