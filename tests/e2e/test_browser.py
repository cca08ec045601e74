"""The browser test page (static/test_chat_websocket.html) driven in a real headless Chromium.

These tests see what a user sees: the page served by a real daphne, its REST calls, its
WebSocket, its rendering. Chromium is the system one (/usr/bin/chromium); nothing is downloaded.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
import threading
import time
import uuid

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.e2e.conftest import login, room_id_by_name
from tests.e2e.server import DEMO_PASSWORD, PROJECT_DIR

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

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
TIMEOUT_MS = 10_000
GERENCIA = "Chat - Gerência"
VENDAS = "Chat - Vendas"
PAGE_FILE = PROJECT_DIR / "static" / "test_chat_websocket.html"


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser, server):
    """Open the test page in a fresh context (own storage, own sockets); closed after the test."""
    contexts = []

    def open_page() -> Page:
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{server.http_url}/static/test_chat_websocket.html")
        return page

    yield open_page
    for context in contexts:
        context.close()


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:12]}"


def connect_public(page: Page, name: str) -> None:
    page.fill("#display-name", name)
    page.select_option("#room-select", "teste")
    page.click("#connect-button")
    expect(page.locator("#status")).to_have_text("Conectado", timeout=TIMEOUT_MS)


def log_in(page: Page, username: str) -> None:
    page.fill("#username", username)
    page.fill("#password", DEMO_PASSWORD)
    page.click("#login-button")
    expect(page.locator("#login-info")).to_contain_text(username, timeout=TIMEOUT_MS)


def open_room(page: Page, room_name: str) -> None:
    """Pick a room from the list the page got from GET /api/chat/rooms/ and connect."""
    option = page.locator("#room-select option", has_text=room_name)
    page.select_option("#room-select", option.get_attribute("value"))
    page.click("#connect-button")
    expect(page.locator("#status")).to_have_text("Conectado", timeout=TIMEOUT_MS)
    expect(page.locator("#room-title")).to_contain_text(room_name, timeout=TIMEOUT_MS)


def send(page: Page, text: str) -> None:
    page.fill("#message-input", text)
    page.press("#message-input", "Enter")


def messages_with(page: Page, text: str):
    return page.locator("#messages .message", has_text=text)


def test_public_room_message_reaches_the_other_page(new_page):
    alice, bruno = new_page(), new_page()
    connect_public(alice, "Alice")
    connect_public(bruno, "Bruno")
    text = unique("olá da Alice")

    send(alice, text)

    expect(bruno.locator("#messages")).to_contain_text(f"Alice: {text}", timeout=TIMEOUT_MS)
    expect(alice.locator("#messages")).to_contain_text(f"Alice: {text}", timeout=TIMEOUT_MS)
    expect(alice.locator("#message-input")).to_have_value("")


def test_authenticated_room_live_and_history_after_reload(new_page):
    admin, maria = new_page(), new_page()
    log_in(admin, "admin")
    log_in(maria, "maria")
    open_room(admin, GERENCIA)
    open_room(maria, GERENCIA)
    text = unique("reunião às 15h")

    admin.click("#message-input")
    admin.fill("#message-input", text)
    admin.click("#send-button")

    expect(maria.locator("#messages")).to_contain_text(f"admin: {text}", timeout=TIMEOUT_MS)
    expect(admin.locator("#messages")).to_contain_text(f"admin: {text}", timeout=TIMEOUT_MS)
    reply = unique("combinado")
    send(maria, reply)
    expect(admin.locator("#messages")).to_contain_text(f"maria: {reply}", timeout=TIMEOUT_MS)
    admin.screenshot(path="/tmp/page.png", full_page=True)

    # A reload forgets everything: the message must come back from the stored history.
    admin.reload()
    expect(admin.locator("#status")).to_have_text("Desconectado")
    log_in(admin, "admin")
    open_room(admin, GERENCIA)
    expect(admin.locator("#messages")).to_contain_text(f"admin: {text}", timeout=TIMEOUT_MS)
    expect(messages_with(admin, text)).to_have_count(1)


def test_reconnect_recovers_missed_messages_without_duplicates(new_page):
    """An unexpected drop: the page backs off, reconnects and fetches what it missed (after=)."""
    admin, maria = new_page(), new_page()
    log_in(admin, "admin")
    log_in(maria, "maria")

    # Every chat socket of the admin page goes through this route: while `blocked` is set,
    # connection attempts are closed at once, as if the server were unreachable.
    blocked = threading.Event()
    attempts = []
    live = []

    def route(ws):
        attempts.append(time.monotonic())
        if blocked.is_set():
            ws.close(code=4000, reason="simulated outage")
            return
        live.append((ws, ws.connect_to_server()))

    admin.route_web_socket(re.compile(r"/ws/chat/"), route)
    open_room(admin, GERENCIA)
    open_room(maria, GERENCIA)
    before = unique("antes da queda")
    send(maria, before)
    expect(admin.locator("#messages")).to_contain_text(before, timeout=TIMEOUT_MS)

    blocked.set()
    page_side, server_side = live[-1]
    dropped_at = time.monotonic()
    server_side.close()
    page_side.close(code=4000, reason="simulated drop")
    expect(admin.locator("#status")).to_contain_text("Reconectando", timeout=TIMEOUT_MS)
    expect(admin.locator("#error")).to_contain_text("4000", timeout=TIMEOUT_MS)

    missed = [unique(f"perdida {n}") for n in range(3)]
    for text in missed:
        send(maria, text)
    for text in missed:
        expect(maria.locator("#messages")).to_contain_text(text, timeout=TIMEOUT_MS)
    expect(admin.locator("#messages")).not_to_contain_text(missed[0])
    # Let two retries fail (about 1 s, then 2 s later) before the "server" comes back.
    deadline = time.monotonic() + 8
    while len(attempts) < 3 and time.monotonic() < deadline:
        admin.wait_for_timeout(100)
    blocked.clear()

    expect(admin.locator("#status")).to_have_text("Conectado", timeout=TIMEOUT_MS)
    for text in missed:
        expect(admin.locator("#messages")).to_contain_text(f"maria: {text}", timeout=TIMEOUT_MS)
    after = unique("depois da volta")
    send(maria, after)
    expect(admin.locator("#messages")).to_contain_text(after, timeout=TIMEOUT_MS)
    for text in [before, *missed, after]:
        expect(messages_with(admin, text)).to_have_count(1)
    # Stored messages stay in id order however they arrived (history or live).
    rendered = admin.locator("#messages .message[data-id]").evaluate_all(
        "items => items.map(item => Number(item.dataset.id))"
    )
    assert rendered == sorted(rendered)
    # Exponential backoff: retries about 1 s, 2 s and 4 s apart.
    retries = [dropped_at, *attempts[1:4]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(retries)]
    assert len(gaps) == 3, gaps
    for gap, expected in zip(gaps, (1, 2, 4), strict=True):
        assert expected * 0.8 < gap < expected + 1.5, gaps


def test_non_member_rejection_is_shown_and_not_retried(new_page, server):
    admin_token = login(server, "admin")
    vendas_id = room_id_by_name(server, admin_token, VENDAS)
    rejections_before = server.log().count("not_a_member")
    page = new_page()
    log_in(page, "pedro")
    expect(page.locator("#room-select option", has_text=VENDAS)).to_have_count(0)

    page.fill("#room-id", vendas_id)
    page.click("#connect-button")

    error = page.locator("#error")
    expect(error).to_contain_text("4403", timeout=TIMEOUT_MS)
    expect(error).to_contain_text("not_a_member", timeout=TIMEOUT_MS)
    expect(page.locator("#status")).to_have_text("Desconectado")
    expect(page.locator("#connect-button")).to_be_enabled()
    # A rejection needs the user to act: the page must not keep knocking (first retry is 1 s).
    page.wait_for_timeout(2500)
    assert server.log().count("not_a_member") - rejections_before == 1


def test_xss_payload_is_shown_as_text(new_page):
    page = new_page()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    connect_public(page, "Mallory")
    marker = uuid.uuid4().hex[:12]
    payload = f"<img src=x onerror=alert(1)> {marker}"

    send(page, payload)

    expect(page.locator("#messages")).to_contain_text(payload, timeout=TIMEOUT_MS)
    expect(page.locator("#messages img")).to_have_count(0)
    page.wait_for_timeout(300)  # an onerror would fire right after the broken image loads
    assert dialogs == []


def test_frame_error_is_shown_and_socket_stays_open(new_page):
    page = new_page()
    connect_public(page, "Prolixo")

    send(page, "x" * 4001)

    expect(page.locator("#error")).to_contain_text("message_too_long", timeout=TIMEOUT_MS)
    expect(page.locator("#status")).to_have_text("Conectado")
    text = unique("curta")
    send(page, text)
    expect(page.locator("#messages")).to_contain_text(text, timeout=TIMEOUT_MS)


def test_page_opened_from_disk_uses_the_server_url_field(browser, server):
    """file:// → origin "null": the public room still works (DEBUG) once the URL is set."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(PAGE_FILE.as_uri())
        expect(page.locator("#server-url")).to_have_value("http://localhost:8000")
        page.fill("#server-url", server.http_url)
        connect_public(page, "Disco")
        text = unique("aberta do disco")
        send(page, text)
        expect(page.locator("#messages")).to_contain_text(f"Disco: {text}", timeout=TIMEOUT_MS)
    finally:
        context.close()


def test_page_works_under_the_servers_content_security_policy(browser, server):
    """The server sends a CSP that allows the page's own script and style blocks by hash:
    the page works with no violation, and a script injected into it does not run."""
    html = PAGE_FILE.read_text(encoding="utf-8")
    script = re.search(r"<script>(.*?)</script>", html, re.S).group(1)
    style = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    violations = []
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on(
            "console",
            lambda msg: (
                violations.append(msg.text) if "Content Security Policy" in msg.text else None
            ),
        )
        response = page.goto(f"{server.http_url}/static/test_chat_websocket.html")
        policy = response.headers["content-security-policy"]
        assert f"script-src '{csp_hash(script)}'" in policy
        assert f"style-src '{csp_hash(style)}'" in policy
        assert "default-src 'none'" in policy
        connect_public(page, "Seguro")
        text = unique("com CSP")
        send(page, text)
        expect(page.locator("#messages")).to_contain_text(f"Seguro: {text}", timeout=TIMEOUT_MS)
        assert violations == []

        page.evaluate(
            """() => { const s = document.createElement('script');
                       s.textContent = 'window.__injected = true';
                       document.body.appendChild(s); }"""
        )
        assert page.evaluate("() => window.__injected === undefined")
        assert violations, "the browser reports the blocked inline script"
    finally:
        context.close()


def csp_hash(source: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()
