"""/metrics of real daphne processes: two workers sharing PROMETHEUS_MULTIPROC_DIR report as one."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request

import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import login, room_id_by_name
from tests.e2e.server import prepared_env, start_server

pytestmark = pytest.mark.e2e


def scrape(server) -> dict:
    with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def send_one_message(server, token: str, room_id: str, text: str) -> None:
    """A member sends; it and a second socket of the same room each get the message."""
    url = f"{server.ws_url}/ws/chat/{room_id}/?token={token}"
    async with websockets.connect(url) as sender, websockets.connect(url) as receiver:
        for socket in (sender, receiver):
            assert json.loads(await socket.recv())["type"] == "connection.established"
        await sender.send(json.dumps({"type": "chat.message", "message": text}))
        for socket in (sender, receiver):
            while json.loads(await socket.recv()).get("message") != text:
                pass


def test_two_workers_with_one_multiprocess_dir_add_up(tmp_path):
    env = prepared_env(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))
    first = start_server(env, tmp_path / "first.log")
    second = start_server(env, tmp_path / "second.log")
    try:
        token = login(first, "maria")
        room_id = room_id_by_name(first, token, "Chat - Vendas")
        asyncio.run(send_one_message(first, token, room_id, "pelo primeiro"))
        asyncio.run(send_one_message(second, token, room_id, "pelo segundo"))
        from_first, from_second = scrape(first), scrape(second)
    finally:
        first.stop()
        second.stop()
    for figures in (from_first, from_second):  # either process answers for both
        assert figures[("chat_messages_stored_total", ())] == 2  # one by each process
        assert figures[("chat_deliveries_total", ())] == 4  # two sockets on each
        assert figures[("chat_delivery_latency_seconds_count", ())] == 2
    figures = from_second
    accepted = (("close_code", ""), ("result", "accepted"))
    assert figures[("chat_handshakes_total", accepted)] == 4
    assert figures.get(("chat_open_sockets", (("room_type", "group"),)), 0) == 0  # all closed


def test_the_admin_page_and_its_chart_library_are_served(tmp_path):
    server = start_server(prepared_env(tmp_path), tmp_path / "daphne.log")
    try:
        with urllib.request.urlopen(
            f"{server.http_url}/static/vendor/uplot-1.6.32/uPlot.iife.min.js", timeout=10
        ) as answer:
            assert answer.status == 200 and b"uPlot" in answer.read()
        with urllib.request.urlopen(f"{server.http_url}/admin/chat-metrics/", timeout=10) as page:
            assert page.url.startswith(f"{server.http_url}/admin/login/?next=/admin/chat-metrics/")
    finally:
        server.stop()


@pytest.mark.browser
def test_staff_see_the_live_charts_in_a_real_browser(server, browser):
    from playwright.sync_api import expect

    from tests.e2e.server import DEMO_PASSWORD

    token = login(server, "maria")
    room_id = room_id_by_name(server, token, "Chat - Vendas")
    context = browser.new_context()
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.goto(f"{server.http_url}/admin/chat-metrics/")
    page.fill("#id_username", "admin")  # the admin's login first: staff only
    page.fill("#id_password", DEMO_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/chat-metrics/")
    # In a thread: Playwright's sync API runs an event loop in this one.
    sender = threading.Thread(
        target=asyncio.run, args=(send_one_message(server, token, room_id, "para o gráfico"),)
    )
    sender.start()
    sender.join(timeout=30)
    expect(page.locator("#chat-metrics-status")).to_contain_text("updated", timeout=10_000)
    expect(page.locator("#chat-metrics .uplot")).to_have_count(8, timeout=10_000)
    expect(page.locator("#chat-metrics")).to_contain_text("messages stored")
    context.close()
    assert errors == []
