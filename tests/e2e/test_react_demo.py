"""The reference React app (clients/react-demo) as Django serves it at /chat/, in Chromium.

Needs the built app (clients/react-demo/dist: `npm run build` in clients/, which scripts/test
does). Without it these tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import re
import time
import uuid

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import login, ok
from tests.e2e.server import DEMO_PASSWORD, PROJECT_DIR, seeded_server

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

TIMEOUT_MS = 10_000
DIST_INDEX = PROJECT_DIR / "clients" / "react-demo" / "dist" / "index.html"
VENDAS = "Chat - Vendas"  # seed_demo: admin, maria and joao only
NOT_A_MEMBER_TEXT = "você não é membro desta sala; peça a um administrador da sala (not_a_member)"


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    """A daphne of its own: these tests log in several times, and logins are throttled per
    address (20/min) on the shared server."""
    if not DIST_INDEX.is_file():
        message = f"{DIST_INDEX} missing: run `npm ci && npm run build` in clients/"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    server = seeded_server(
        tmp_path_factory.mktemp("react-demo"),
        LOGIN_THROTTLE_RATE="600/min",
        CHAT_READ_COALESCE_SECONDS="0",  # a read marker is stored at once: unread counts exact
    )
    yield server
    server.stop()


@pytest.fixture
def new_page(browser: Browser, app_server):
    """A page in a fresh context (its own sessionStorage and sockets), closed after the test.

    The test fails on an uncaught exception or a Content-Security-Policy violation in any page
    (a REST 404 that the app explains is no failure)."""
    contexts, problems = [], []

    def note_console(message) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            problems.append(message.text)

    def open_page(path: str = "/chat/") -> Page:
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("console", note_console)
        page.goto(f"{app_server.http_url}{path}")
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert problems == []


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:12]}"


def log_in(page: Page, username: str) -> None:
    page.get_by_test_id("login-username").fill(username)
    page.get_by_test_id("login-password").fill(DEMO_PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("session-user")).to_have_text(username)


def open_room(page: Page, name: str) -> str:
    """Follow the room list's link; the room's id, from the list."""
    item = page.get_by_test_id("room-item").filter(has_text=name)
    room_id = item.get_attribute("data-room-id")
    item.get_by_test_id("room-link").click()
    expect(page.get_by_test_id("room-status")).to_have_text("conectado")
    expect(page.get_by_test_id("room-name")).to_have_text(name)
    return room_id


def send(page: Page, text: str) -> None:
    page.get_by_test_id("composer-input").fill(text)
    page.get_by_test_id("composer-input").press("Enter")


def message(page: Page, text: str):
    return page.get_by_test_id("message").filter(has_text=text)


def wait_until_all_read(server, token: str, room_id: str, timeout: float = 5.0) -> None:
    """The page sent its read marker; the server stores it a moment later."""
    deadline = time.monotonic() + timeout
    while True:
        rooms = ok(server, "GET", "/api/chat/rooms/", token)
        if next(room for room in rooms if room["id"] == room_id)["unread_count"] == 0:
            return
        assert time.monotonic() < deadline, "the read marker was never stored"
        time.sleep(0.05)


def test_two_users_see_each_others_messages_live(new_page, app_server):
    maria, joao = new_page(), new_page()
    log_in(maria, "maria")
    log_in(joao, "joao")
    vendas_id = open_room(maria, VENDAS)
    open_room(joao, VENDAS)
    expect(maria.get_by_test_id("presence-list")).to_contain_text("joao")

    hello = unique("oi, joão")
    send(maria, hello)
    expect(message(joao, hello).get_by_test_id("message-author")).to_have_text("maria")
    expect(message(maria, hello)).to_be_visible()
    expect(maria.get_by_test_id("composer-input")).to_have_value("")

    joao.get_by_test_id("composer-input").press_sequentially("digitando")
    expect(maria.get_by_test_id("typing-indicator")).to_have_text("joao está digitando…")
    reply = unique("oi, maria")
    joao.get_by_test_id("composer-input").fill(reply)
    joao.get_by_test_id("composer-send").click()
    expect(message(maria, reply).get_by_test_id("message-author")).to_have_text("joao")
    expect(maria.get_by_test_id("typing-indicator")).to_have_text("")

    # Away from the room, what joao sends is counted unread in maria's room list.
    wait_until_all_read(app_server, login(app_server, "maria"), vendas_id)
    maria.get_by_test_id("back-to-rooms").click()
    vendas = maria.get_by_test_id("room-item").filter(has_text=VENDAS)
    expect(vendas).to_be_visible()
    expect(vendas.get_by_test_id("room-unread")).to_have_count(0)  # maria read all of it
    send(joao, unique("mais uma"))
    expect(message(joao, "mais uma")).to_be_visible()
    maria.get_by_test_id("rooms-refresh").click()
    expect(vendas.get_by_test_id("room-unread")).to_have_text("1")


def test_a_reload_keeps_the_session_and_the_room_shows_its_history(new_page):
    maria = new_page()
    log_in(maria, "maria")
    room_id = open_room(maria, VENDAS)
    text = unique("antes do reload")
    send(maria, text)
    expect(message(maria, text)).to_be_visible()
    assert maria.url.endswith(f"/chat/rooms/{room_id}")

    maria.reload()  # Django answers the room's own address with the app (SPA fallback)

    expect(maria.get_by_test_id("session-user")).to_have_text("maria")
    expect(maria.get_by_test_id("room-status")).to_have_text("conectado")
    expect(message(maria, text)).to_be_visible()
    maria.get_by_test_id("back-to-rooms").click()
    expect(maria.get_by_test_id("room-item").filter(has_text=VENDAS)).to_be_visible()


def test_a_non_member_sees_why_in_portuguese(new_page, app_server):
    maria = new_page()
    log_in(maria, "maria")
    vendas_id = (
        maria.get_by_test_id("room-item").filter(has_text=VENDAS).get_attribute("data-room-id")
    )
    ana = new_page()
    log_in(ana, "ana")
    expect(ana.get_by_test_id("room-item").filter(has_text=VENDAS)).to_have_count(0)

    ana.goto(f"{app_server.http_url}/chat/rooms/{vendas_id}")

    expect(ana.get_by_test_id("room-error")).to_have_text(NOT_A_MEMBER_TEXT)
    expect(ana.get_by_test_id("room-status")).to_have_text("desconectado")
    expect(ana.get_by_test_id("composer-input")).to_have_count(0)


def test_scrolling_to_the_top_loads_older_messages_and_keeps_the_view(new_page, app_server):
    """The first page is the newest 50 (the client's default); the 10 before come on scroll-up."""
    token = login(app_server, "carlos")
    name = unique("Histórico")
    room = ok(app_server, "POST", "/api/chat/rooms/", token, {"name": name})
    for number in range(1, 61):
        ok(
            app_server,
            "POST",
            f"/api/chat/rooms/{room['id']}/messages/",
            token,
            {"message": f"mensagem {number:02d}"},
        )
    carlos = new_page()
    log_in(carlos, "carlos")
    open_room(carlos, name)
    messages = carlos.get_by_test_id("message")
    expect(messages).to_have_count(50)
    expect(messages.first).to_contain_text("mensagem 11")

    carlos.get_by_test_id("message-list").evaluate("list => { list.scrollTop = 0; }")

    expect(messages).to_have_count(60)
    expect(messages.first).to_contain_text("mensagem 01")
    expect(carlos.get_by_test_id("load-older")).to_have_count(0)  # nothing older is left
    # The older page went above what was read: the view did not jump to the top.
    assert carlos.get_by_test_id("message-list").evaluate("list => list.scrollTop") > 0


def test_a_dropped_server_shows_the_countdown_and_tentar_agora_reconnects(new_page, app_server):
    """Last in the module: it kills the module's server (and starts it again).

    The page's clock is paused before the drop, so the backoff timer never fires: only
    "tentar agora" can bring the room back."""
    maria = new_page()
    maria.clock.install()
    maria.reload()
    log_in(maria, "maria")
    open_room(maria, VENDAS)
    maria.clock.pause_at(int(time.time() * 1000) + 1000)

    app_server.kill()
    status = maria.get_by_test_id("room-status")
    expect(status).to_contain_text(re.compile(r"reconectando em \d+s…"))
    app_server.start()
    maria.get_by_test_id("retry-now").click()

    expect(status).to_have_text("conectado")
    maria.clock.resume()
    text = unique("de volta")
    send(maria, text)
    expect(message(maria, text)).to_be_visible()
