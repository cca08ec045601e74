"""Every client frame type spends a per-connection budget (docs/protocol.md, "Frame budgets")."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from chat.domain.models import Membership, Message
from chat.protocol import CLIENT_TYPES
from chat.realtime.consumers.base import frame_budget
from tests import factories
from tests.e2e.server import PROJECT_DIR
from tests.ws import assert_rejected, joined, room_path

pytestmark = pytest.mark.django_db(transaction=True)

NO_PRESENCE = ("presence",)


def tight(settings, frame_type: str, burst: int = 2) -> None:
    """`burst` frames of `frame_type` at once, then (practically) none."""
    settings.CHAT_FRAME_BUDGETS = {**settings.CHAT_FRAME_BUDGETS, frame_type: (0.001, burst)}


async def member(room, user, ignore=NO_PRESENCE):
    return await joined(room_path(room), token=factories.access_token(user), ignore=ignore)


async def assert_over_budget(socket, frame_type: str) -> None:
    frame = await socket.receive_json_from()
    assert (frame["type"], frame["code"]) == ("error", "rate_limited"), frame
    assert frame["detail"] == f"too many {frame_type} frames; at most 0.001 per second"


async def post(room, author, count: int) -> list[int]:
    return [
        (await Message.objects.acreate(room=room, author=author, text=f"m{n}")).pk
        for n in range(count)
    ]


def test_every_client_frame_type_has_a_budget():
    for frame_type in CLIENT_TYPES:
        rate, burst = frame_budget(frame_type)
        assert rate > 0 and burst >= 1, frame_type


async def test_sync_over_its_budget_is_rate_limited_and_spends_no_other_budget(
    room, alice, settings
):
    tight(settings, "chat.sync")
    socket = await member(room, alice)
    for _ in range(2):
        await socket.send_json_to({"type": "chat.sync", "after": 0})
        assert (await socket.receive_json_from())["type"] == "chat.history"
    await socket.send_json_to({"type": "chat.sync", "after": 0})
    await assert_over_budget(socket, "chat.sync")

    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from() == {"type": "pong"}
    await socket.send_json_to({"message": "ainda posso falar"})
    assert (await socket.receive_json_from())["message"] == "ainda posso falar"
    await socket.disconnect()


async def test_ping_over_its_budget_is_rate_limited(room, alice, settings):
    tight(settings, "ping")
    socket = await member(room, alice)
    for _ in range(2):
        await socket.send_json_to({"type": "ping"})
        assert await socket.receive_json_from() == {"type": "pong"}
    await socket.send_json_to({"type": "ping"})
    await assert_over_budget(socket, "ping")
    await socket.send_json_to({"type": "chat.sync", "after": 0})
    assert (await socket.receive_json_from())["type"] == "chat.history"
    await socket.disconnect()


async def test_read_over_its_budget_is_rate_limited_and_not_stored(room, alice, bob, settings):
    tight(settings, "read")
    m1, m2, m3 = await post(room, alice, 3)
    reader = await member(room, bob, ignore=())
    await reader.receive_nothing(0.2)  # bob's own presence, if any
    for message_id in (m1, m2):
        await reader.send_json_to({"type": "read", "message_id": message_id})
        assert (await reader.receive_json_from())["message_id"] == message_id
    await reader.send_json_to({"type": "read", "message_id": m3})
    await assert_over_budget(reader, "read")
    membership = await Membership.objects.aget(room=room, user=bob)
    assert membership.last_read_message_id == m2, "the read over budget moved nothing"
    assert await reader.receive_nothing(0.2), "and nobody was told of it"
    await reader.disconnect()


async def test_typing_over_its_receive_budget_is_rate_limited_and_not_relayed(
    room, alice, bob, settings
):
    tight(settings, "typing")
    typist = await member(room, alice)
    watcher = await member(room, bob, ignore=NO_PRESENCE)
    for is_typing in (True, False, True):
        await typist.send_json_to({"type": "typing", "is_typing": is_typing})
    await assert_over_budget(typist, "typing")
    heard = [await watcher.receive_json_from() for _ in range(2)]
    assert [frame["is_typing"] for frame in heard] == [True, False]
    assert await watcher.receive_nothing(0.3), "the third typing frame was not relayed"
    await typist.disconnect()
    await watcher.disconnect()


async def test_persisting_over_a_frame_budget_is_closed_with_4429(room, alice, settings):
    settings.CHAT_RATE_LIMIT_STRIKES = 2
    tight(settings, "chat.sync", burst=1)
    socket = await member(room, alice)
    await socket.send_json_to({"type": "chat.sync", "after": 0})
    assert (await socket.receive_json_from())["type"] == "chat.history"
    for _ in range(2):
        await socket.send_json_to({"type": "chat.sync", "after": 0})
        await assert_over_budget(socket, "chat.sync")
    await socket.send_json_to({"type": "chat.sync", "after": 0})
    await assert_rejected(socket, "rate_limited", 4429)


async def test_public_room_frames_have_budgets_too(settings):
    tight(settings, "chat.sync", burst=1)
    socket = await joined("/ws/chat/teste/")
    await socket.send_json_to({"type": "chat.sync", "after": 0})
    assert (await socket.receive_json_from())["type"] == "chat.history"
    await socket.send_json_to({"type": "chat.sync", "after": 0})
    await assert_over_budget(socket, "chat.sync")
    await socket.disconnect()


def settings_in_a_new_process(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import json; from django.conf import settings; "
            "print(json.dumps(settings.CHAT_FRAME_BUDGETS))",
        ],
        env={"DJANGO_SETTINGS_MODULE": "crm_backend.settings", "PATH": "/usr/bin:/bin", **env},
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_operator_changes_a_budget_with_json_and_a_typo_stops_the_server(settings):
    changed = settings_in_a_new_process(CHAT_FRAME_BUDGETS='{"chat.sync": [4, 20]}')
    assert changed.returncode == 0, changed.stderr
    budgets = json.loads(changed.stdout)
    assert budgets["chat.sync"] == [4.0, 20]
    assert budgets["ping"] == list(settings.CHAT_FRAME_BUDGETS["ping"]), "the others as before"

    typo = settings_in_a_new_process(CHAT_FRAME_BUDGETS='{"chat.sink": [4, 20]}')
    assert typo.returncode != 0
    assert "ImproperlyConfigured" in typo.stderr and "chat.sync" in typo.stderr
