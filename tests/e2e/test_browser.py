"""The browser test page (static/test_chat_websocket.html) driven in a real headless Chromium.

These tests see what a user sees: the page served by a real daphne, its REST calls, its
WebSocket, its rendering. Chromium is the system one (/usr/bin/chromium); nothing is downloaded.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import http_json, login, ok, room_id_by_name
from tests.e2e.server import DEMO_PASSWORD, PROJECT_DIR

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

TIMEOUT_MS = 10_000
GERENCIA = "Chat - Gerência"
VENDAS = "Chat - Vendas"
PAGE_FILE = PROJECT_DIR / "static" / "test_chat_websocket.html"


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
    history_requests = []
    admin.on("request", lambda r: "/messages/" in r.url and history_requests.append(r.url))
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
    assert any("after=" in url for url in history_requests), (
        f"the reconnect asks for what came after the last id: {history_requests}"
    )
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
        expect(page.locator("#login-info")).to_contain_text('só a sala "teste" funciona')
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


# --- team chat: presence, typing, read receipts, edits and deletes -------------------------
# Logins are throttled (LOGIN_THROTTLE_RATE, 20/min per address) on the shared server, so these
# tests share two logged-in pages and one token per user; each test leaves them disconnected.


@dataclass
class Pair:
    admin: Page
    maria: Page
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def logged_in_pair(browser, server):
    contexts = [browser.new_context(), browser.new_context()]
    pages = []
    for context, username in zip(contexts, ["admin", "maria"], strict=True):
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{server.http_url}/static/test_chat_websocket.html")
        log_in(page, username)
        pages.append(page)
    yield Pair(*pages, tokens={"admin": login(server, "admin"), "maria": login(server, "maria")})
    for context in contexts:
        context.close()


@pytest.fixture
def pair(logged_in_pair):
    yield logged_in_pair
    for page in (logged_in_pair.admin, logged_in_pair.maria):
        if page.locator("#disconnect-button").is_enabled():
            page.click("#disconnect-button")
        expect(page.locator("#status")).to_have_text("Desconectado")


def rest(server, method: str, path: str, token: str, data: dict | None = None) -> int:
    """A REST call the way another client (the React app, a script) would make it."""
    request = urllib.request.Request(
        f"{server.http_url}{path}",
        json.dumps(data).encode() if data is not None else None,
        {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def rendered(page: Page, message_id: int):
    return page.locator(f'#messages .message[data-id="{message_id}"]')


def rendered_id(page: Page, text: str) -> int:
    item = messages_with(page, text)
    expect(item).to_have_count(1, timeout=TIMEOUT_MS)
    return int(item.get_attribute("data-id"))


def online_names(page: Page, name: str):
    return page.locator("#online-list li").filter(has_text=re.compile(f"^{name}$"))


def test_presence_list_shows_who_is_online(pair):
    admin, maria = pair.admin, pair.maria
    open_room(admin, VENDAS)
    expect(online_names(admin, "admin")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(online_names(admin, "maria")).to_have_count(0)

    open_room(maria, VENDAS)  # maria's list comes from GET …/presence/, admin's from a frame
    expect(online_names(maria, "admin")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(online_names(maria, "maria")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(online_names(admin, "maria")).to_have_count(1, timeout=TIMEOUT_MS)

    maria.click("#disconnect-button")
    expect(online_names(admin, "maria")).to_have_count(0, timeout=TIMEOUT_MS)
    expect(maria.locator("#presence")).to_be_hidden()


def test_typing_indicator_appears_on_the_other_page(pair):
    admin, maria = pair.admin, pair.maria
    open_room(admin, GERENCIA)
    open_room(maria, GERENCIA)
    indicator = admin.locator("#typing")
    expect(indicator).to_have_text("")

    maria.locator("#message-input").press_sequentially("estou escrev", delay=20)
    expect(indicator).to_have_text("maria está digitando…", timeout=TIMEOUT_MS)
    expect(maria.locator("#typing")).to_have_text("")  # not to herself

    send(maria, unique("pronto"))  # sending stops the indicator
    expect(indicator).to_have_text("", timeout=TIMEOUT_MS)

    maria.locator("#message-input").press_sequentially("mais uma", delay=20)
    expect(indicator).to_have_text("maria está digitando…", timeout=TIMEOUT_MS)
    maria.click("#room-title")  # leaving the input stops it too, well before the server would
    expect(indicator).to_have_text("", timeout=2500)
    maria.fill("#message-input", "")


def test_edited_and_deleted_messages_update_on_every_page(pair, server):
    admin, maria, token = pair.admin, pair.maria, pair.tokens["admin"]
    open_room(admin, GERENCIA)
    open_room(maria, GERENCIA)
    typo, doomed = unique("reuniao as 15h"), unique("mensagem errada")
    send(admin, typo)
    send(admin, doomed)
    typo_id, doomed_id = rendered_id(maria, typo), rendered_id(maria, doomed)
    base = f"/api/chat/rooms/{room_id_by_name(server, token, GERENCIA)}/messages/"
    fixed = unique("reunião às 16h")

    assert rest(server, "PATCH", f"{base}{typo_id}/", token, {"message": fixed}) == 200
    assert rest(server, "DELETE", f"{base}{doomed_id}/", token) == 204

    for page in (admin, maria):
        # Nothing of the old text after the new; the author's page may add its read receipt.
        expect(rendered(page, typo_id)).to_have_text(
            re.compile(re.escape(f"admin: {fixed} (editado)") + r"(\s?✓ lido por .+)?$"),
            timeout=TIMEOUT_MS,
        )
        expect(rendered(page, doomed_id)).to_contain_text(
            "admin: mensagem apagada", timeout=TIMEOUT_MS
        )
        expect(rendered(page, doomed_id)).not_to_contain_text(doomed)
    expect(messages_with(maria, typo)).to_have_count(0)

    # From history (another room, then back: the screen is rebuilt from GET …/messages/).
    for room in (VENDAS, GERENCIA):
        maria.click("#disconnect-button")
        open_room(maria, room)
        if room == VENDAS:
            expect(rendered(maria, typo_id)).to_have_count(0)
    expect(rendered(maria, typo_id)).to_contain_text(f"{fixed} (editado)", timeout=TIMEOUT_MS)
    expect(rendered(maria, doomed_id)).to_contain_text("mensagem apagada")
    expect(rendered(maria, doomed_id)).not_to_contain_text("(editado)")


def test_read_receipts_mark_the_room_read_and_show_on_own_messages(pair, server):
    admin, maria = pair.admin, pair.maria
    open_room(admin, VENDAS)
    open_room(maria, VENDAS)
    text = unique("alguém leu?")

    send(admin, text)

    expect(maria.locator("#messages")).to_contain_text(text, timeout=TIMEOUT_MS)
    receipt = messages_with(admin, text).locator(".receipt")
    expect(receipt).to_have_text("✓ lido por 1", timeout=TIMEOUT_MS)
    receipt.click()  # who: GET …/messages/<id>/seen/
    expect(receipt).to_have_text("✓ lido por maria", timeout=TIMEOUT_MS)
    rooms = http_json(f"{server.http_url}/api/chat/rooms/", token=pair.tokens["maria"])
    assert next(r["unread_count"] for r in rooms if r["name"] == VENDAS) == 0


# --- threads, reactions and recovered changes (issue 17) -------------------------------------


def reaction_on(page: Page, message_id: int, emoji: str):
    return rendered(page, message_id).locator(f'.reactions button[data-emoji="{emoji}"]')


def test_reactions_are_counted_live_on_every_page_each_marking_its_own(pair):
    admin, maria = pair.admin, pair.maria
    open_room(admin, GERENCIA)
    open_room(maria, GERENCIA)
    text = unique("vamos almoçar?")
    send(admin, text)
    message_id = rendered_id(maria, text)

    rendered(maria, message_id).locator('.react-button[data-emoji="👍"]').click()
    for page in (admin, maria):
        expect(reaction_on(page, message_id, "👍")).to_have_text("👍 1", timeout=TIMEOUT_MS)
    expect(reaction_on(maria, message_id, "👍")).to_have_class(re.compile(r"\bmine\b"))
    expect(reaction_on(admin, message_id, "👍")).not_to_have_class(re.compile(r"\bmine\b"))

    reaction_on(admin, message_id, "👍").click()  # admin joins in
    for page in (admin, maria):
        expect(reaction_on(page, message_id, "👍")).to_have_text("👍 2", timeout=TIMEOUT_MS)
    reaction_on(maria, message_id, "👍").click()  # maria takes hers back
    for page in (admin, maria):
        expect(reaction_on(page, message_id, "👍")).to_have_text("👍 1", timeout=TIMEOUT_MS)
    expect(reaction_on(maria, message_id, "👍")).not_to_have_class(re.compile(r"\bmine\b"))
    expect(reaction_on(admin, message_id, "👍")).to_have_class(re.compile(r"\bmine\b"))


def test_a_reply_counts_on_its_root_and_shows_in_the_opened_thread(pair):
    admin, maria = pair.admin, pair.maria
    open_room(admin, VENDAS)
    open_room(maria, VENDAS)
    question = unique("quem fecha o pedido?")
    send(admin, question)
    root_id = rendered_id(maria, question)

    rendered(maria, root_id).locator(".reply-button").click()
    expect(maria.locator("#reply-banner")).to_contain_text(question)
    answer = unique("eu fecho")
    send(maria, answer)
    expect(maria.locator("#reply-banner")).to_be_hidden()

    for page in (admin, maria):
        reply = messages_with(page, answer)
        expect(reply).to_have_class(re.compile(r"\breply\b"), timeout=TIMEOUT_MS)
        expect(rendered(page, root_id).locator(".replies")).to_have_text("1 resposta")
    rendered(admin, root_id).locator(".replies").click()
    expect(admin.locator("#thread")).to_be_visible()
    expect(admin.locator("#thread-title")).to_contain_text(question)
    expect(admin.locator("#thread-messages")).to_contain_text(f"maria: {answer}")

    # A reply to the reply joins the same thread, live in the open thread.
    reply_id = rendered_id(maria, answer)
    rendered(maria, reply_id).locator(".reply-button").click()
    second = unique("combinado")
    send(maria, second)
    expect(admin.locator("#thread-messages")).to_contain_text(second, timeout=TIMEOUT_MS)
    expect(rendered(admin, root_id).locator(".replies")).to_have_text("2 respostas")
    admin.click("#thread-close")
    expect(admin.locator("#thread")).to_be_hidden()


def test_changes_made_while_away_show_after_reconnecting(pair, server):
    admin, maria, token = pair.admin, pair.maria, pair.tokens["admin"]
    open_room(admin, GERENCIA)
    open_room(maria, GERENCIA)
    text = unique("rascunho")
    send(admin, text)
    message_id = rendered_id(maria, text)
    maria.click("#disconnect-button")
    expect(maria.locator("#status")).to_have_text("Desconectado")

    base = f"/api/chat/rooms/{room_id_by_name(server, token, GERENCIA)}/messages/{message_id}/"
    fixed = unique("versão final")
    assert rest(server, "PATCH", base, token, {"message": fixed}) == 200
    assert rest(server, "POST", f"{base}reactions/", token, {"emoji": "🎉"}) == 201

    maria.click("#connect-button")  # the same room: recovery, not a fresh screen
    expect(maria.locator("#status")).to_have_text("Conectado", timeout=TIMEOUT_MS)
    expect(rendered(maria, message_id)).to_contain_text(f"{fixed} (editado)", timeout=TIMEOUT_MS)
    expect(reaction_on(maria, message_id, "🎉")).to_have_text("🎉 1")


def test_a_mention_reaches_the_mentioned_page_in_another_room_and_is_highlighted(pair):
    admin, maria = pair.admin, pair.maria
    open_room(admin, GERENCIA)
    open_room(maria, VENDAS)  # maria is elsewhere: the notification finds her there
    badge = maria.locator("#notifications")
    expect(badge).to_be_visible()
    before = int(badge.inner_text().split()[-1])
    text = unique("@maria pode revisar?")

    send(admin, text)

    expect(badge).to_have_text(f"🔔 {before + 1}", timeout=TIMEOUT_MS)
    expect(maria.locator("#notice")).to_have_text(f"admin mencionou você em {GERENCIA}")
    maria.click("#disconnect-button")
    open_room(maria, GERENCIA)
    expect(messages_with(maria, text)).to_have_class(re.compile(r"\bmentions-me\b"))
    expect(messages_with(admin, text)).not_to_have_class(re.compile(r"\bmentions-me\b"))
    badge.click()  # marks the feed read
    expect(badge).to_have_text("🔔 0", timeout=TIMEOUT_MS)


def test_search_finds_a_message_of_the_users_rooms_with_the_match_marked(pair):
    admin, maria = pair.admin, pair.maria
    open_room(admin, GERENCIA)
    word = f"orcamento{uuid.uuid4().hex[:8]}"
    send(admin, f"<b>revisar</b> o {word} da Gerência")
    expect(messages_with(admin, word)).to_have_count(1, timeout=TIMEOUT_MS)

    maria.fill("#search-input", word.upper())
    maria.click("#search-button")

    hit = maria.locator("#search-results .hit")
    expect(hit).to_have_count(1, timeout=TIMEOUT_MS)
    expect(hit.locator(".hit-room")).to_have_text(f"{GERENCIA} — admin")
    expect(hit.locator("mark")).to_have_text(word)
    expect(hit.locator("b")).to_have_count(0)  # the message's own markup stays text
    expect(hit.locator(".hit-snippet")).to_contain_text("<b>revisar</b>")


def test_an_image_attachment_is_uploaded_sent_previewed_and_downloaded(pair, tmp_path):
    import io

    from PIL import Image

    admin, maria = pair.admin, pair.maria
    open_room(admin, VENDAS)
    open_room(maria, VENDAS)
    picture = tmp_path / "vitrine.png"
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (20, 120, 200)).save(out, format="PNG")
    picture.write_bytes(out.getvalue())

    admin.set_input_files("#file-input", str(picture))
    expect(admin.locator("#pending-files")).to_have_text("Anexos: vitrine.png", timeout=TIMEOUT_MS)
    text = unique("foto da vitrine")
    send(admin, text)

    received = messages_with(maria, text)
    expect(received.locator(".files a.download")).to_have_text("⬇ vitrine.png", timeout=TIMEOUT_MS)
    preview = received.locator(".files img")
    expect(preview).to_have_attribute("src", re.compile(r"^blob:"), timeout=TIMEOUT_MS)
    assert maria.evaluate("(img) => img.naturalWidth", preview.element_handle()) == 320
    with maria.expect_download() as download:
        received.locator(".files a.download").click()
    assert download.value.suggested_filename == "vitrine.png"
    assert open(download.value.path(), "rb").read() == picture.read_bytes()
    expect(admin.locator("#pending-files")).to_have_text("")


# --- rooms of CRM records (issue 18) --------------------------------------------------------


crm_call = ok  # every CRM call here must succeed


def test_a_deals_room_opens_from_the_crm_shows_its_record_and_its_stage_changes(new_page, server):
    maria = login(server, "maria")
    joao_id = http_json(f"{server.http_url}/api/auth/me/", token=login(server, "joao"))["id"]
    title = unique("Expansão")
    deal = crm_call(server, "POST", "/api/crm/deals/", maria, {"title": title, "team": [joao_id]})
    page = new_page()
    log_in(page, "maria")

    page.select_option("#deal-select", str(deal["id"]))
    page.click("#deal-open")

    expect(page.locator("#status")).to_have_text("Conectado", timeout=TIMEOUT_MS)
    expect(page.locator("#room-record")).to_contain_text(f"Negócio: {title}", timeout=TIMEOUT_MS)
    expect(page.locator("#room-record")).to_have_attribute("data-record-type", "crm.deal")
    send(page, "vamos fechar?")
    expect(messages_with(page, "vamos fechar?")).to_have_count(1, timeout=TIMEOUT_MS)

    crm_call(server, "PATCH", f"/api/crm/deals/{deal['id']}/", maria, {"stage": "won"})

    event = page.locator('#messages .message[data-kind="system"]')
    expect(event).to_contain_text("etapa alterada: lead → won", timeout=TIMEOUT_MS)
    expect(event).to_have_class(re.compile(r"\brecord-event\b"))
    expect(page.locator("#room-record")).to_contain_text("fechada", timeout=TIMEOUT_MS)
    send(page, "mais uma")
    expect(page.locator("#error")).to_contain_text("room_read_only", timeout=TIMEOUT_MS)
    expect(messages_with(page, "mais uma")).to_have_count(0)


# --- issue 19's frictions -------------------------------------------------------------------


def test_the_page_loads_without_a_failed_request_and_keeps_its_login_on_reload(new_page):
    page = new_page()
    failed = []
    page.on(
        "response", lambda response: failed.append(response.url) if response.status >= 400 else None
    )
    page.reload()
    page.wait_for_load_state("networkidle")
    assert failed == [], "no favicon 404, no other failed request"

    log_in(page, "maria")
    page.reload()

    expect(page.locator("#login-info")).to_contain_text("maria", timeout=TIMEOUT_MS)
    expect(page.locator("#room-select option", has_text=VENDAS)).to_have_count(1)
    open_room(page, VENDAS)


def test_refusals_read_in_portuguese_with_their_code(new_page, server):
    page = new_page()
    log_in(page, "pedro")
    page.fill("#room-id", room_id_by_name(server, login(server, "maria"), VENDAS))
    page.click("#connect-button")

    error = page.locator("#error")
    expect(error).to_contain_text("você não é membro desta sala", timeout=TIMEOUT_MS)
    expect(error).to_contain_text("(not_a_member)")
