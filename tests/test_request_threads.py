"""HTTP requests run on a few kept threads, so their database connections are kept too."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest
from asgiref.sync import SyncToAsync, sync_to_async
from channels.db import database_sync_to_async
from channels.testing import HttpCommunicator
from django.db.backends.signals import connection_created

from chat.adapters.request_threads import RequestThreads
from crm_backend.asgi import application
from tests.factories import access_token, make_room, make_user


@pytest.mark.django_db(transaction=True)
async def test_history_requests_one_after_another_reuse_one_database_connection():
    """Django alone opens (and drops) a database connection for every request under ASGI."""
    user = await database_sync_to_async(make_user)()
    room = await database_sync_to_async(make_room)(members=[user])
    headers = [(b"host", b"localhost"), (b"authorization", f"Bearer {access_token(user)}".encode())]
    opened = []

    def count(sender, connection, **kwargs):
        opened.append(threading.current_thread().name)

    connection_created.connect(count)
    try:
        for _ in range(10):
            response = await HttpCommunicator(
                application, "GET", f"/api/chat/rooms/{room.pk}/messages/", headers=headers
            ).get_response()
            assert response["status"] == 200
    finally:
        connection_created.disconnect(count)
    assert len(opened) <= 1, f"{len(opened)} connections opened for 10 requests"


@pytest.mark.django_db(transaction=True)
async def test_an_api_request_makes_few_thread_hops(monkeypatch):
    """Each hop to a thread and back costs the event loop a wake-up: Django's async middleware
    stack made 16 per history request (one per middleware hook, the view, the rendering); the
    sync stack makes 3 (the request signal, the whole stack, the response's close)."""
    user = await database_sync_to_async(make_user)()
    room = await database_sync_to_async(make_room)(members=[user])
    headers = [(b"host", b"localhost"), (b"authorization", f"Bearer {access_token(user)}".encode())]
    hops = []
    original_call = SyncToAsync.__call__

    async def counted_call(self, *args, **kwargs):
        hops.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await original_call(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted_call)
    response = await HttpCommunicator(
        application, "GET", f"/api/chat/rooms/{room.pk}/messages/", headers=headers
    ).get_response()
    assert response["status"] == 200
    assert len(hops) <= 3, hops


def _fake_app(thread_names: list, release: threading.Event):
    """An ASGI app running sync code per request, as Django's does; `slow` ones wait."""

    def sync_part(scope: dict):
        thread_names.append(threading.current_thread().name)
        if "started" in scope:
            scope["loop"].call_soon_threadsafe(scope["started"].set)
            assert release.wait(timeout=5)

    async def app(scope, receive, send):
        await sync_to_async(sync_part)(scope)

    return app


async def test_a_slow_request_does_not_hold_up_the_next_one():
    names, release = [], threading.Event()
    requests = RequestThreads(_fake_app(names, release), threads=2)
    started = asyncio.Event()
    slow_scope = {"started": started, "loop": asyncio.get_running_loop()}
    slow_request = asyncio.ensure_future(requests(slow_scope, None, None))
    await asyncio.wait_for(started.wait(), timeout=5)
    await asyncio.wait_for(requests({}, None, None), timeout=5)
    assert not slow_request.done()
    release.set()
    await slow_request
    assert names[0] != names[1], "the second request ran on the other thread"


async def test_requests_one_after_another_run_on_the_same_thread():
    names = []
    requests = RequestThreads(_fake_app(names, threading.Event()), threads=3)
    for _ in range(5):
        await requests({}, None, None)
    assert len(set(names)) == 1 and names[0].startswith("http-request-")


async def test_a_thread_still_busy_with_an_abandoned_request_gets_no_new_one():
    """A client that goes away ends its request while the view still runs on its thread."""
    names, release = [], threading.Event()

    def stuck_view():
        names.append(threading.current_thread().name)
        assert release.wait(timeout=5)

    async def app(scope, receive, send):
        if scope.get("abandon"):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sync_to_async(stuck_view)(), timeout=0.05)
        else:
            await sync_to_async(lambda: names.append(threading.current_thread().name))()

    requests = RequestThreads(app, threads=2)
    await requests({"abandon": True}, None, None)  # returns; its thread is still busy
    try:
        await asyncio.wait_for(requests({}, None, None), timeout=2)
    finally:
        release.set()
    assert names[0] != names[1]
