"""Connection tickets: POST /api/chat/ws-ticket/ → ?ticket= opens one socket, once, briefly."""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ConnectionTicket
from tests import factories
from tests.ws import assert_rejected, joined, open_socket, room_path

pytestmark = pytest.mark.django_db(transaction=True)


def new_ticket(user) -> str:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {factories.access_token(user)}")
    response = client.post("/api/chat/ws-ticket/")
    assert response.status_code == 201
    assert response.json()["expires_in"] == 30
    return response.json()["ticket"]


def test_ticket_needs_authentication():
    assert APIClient().post("/api/chat/ws-ticket/").status_code == 401


async def test_ticket_opens_a_socket_once(room, alice, caplog):
    caplog.set_level(logging.INFO)
    ticket = await _async(new_ticket)(alice)

    first = await joined(f"{room_path(room)}?ticket={ticket}")
    await first.disconnect()
    again = await open_socket(f"{room_path(room)}?ticket={ticket}")
    await assert_rejected(again, "token_invalid", 4401)
    assert ticket not in caplog.text


async def test_ticket_is_spent_only_by_the_socket_that_needs_it(room, alice):
    """The public room needs no credential and a foreign origin is refused first: neither
    uses up a ticket, which then still opens its real room."""
    ticket = await _async(new_ticket)(alice)

    public = await joined(f"/ws/chat/teste/?ticket={ticket}")
    await public.disconnect()
    foreign = await open_socket(f"{room_path(room)}?ticket={ticket}", origin="https://evil.example")
    await assert_rejected(foreign, "origin_not_allowed", 4403)

    communicator = await joined(f"{room_path(room)}?ticket={ticket}")
    await communicator.disconnect()


async def test_ticket_expires(room, alice):
    ticket = await _async(new_ticket)(alice)
    await ConnectionTicket.objects.all().aupdate(expires_at=timezone.now() - timedelta(seconds=1))
    communicator = await open_socket(f"{room_path(room)}?ticket={ticket}")
    await assert_rejected(communicator, "token_invalid", 4401)


async def test_ticket_of_a_non_member_is_still_refused_by_membership(room, outsider):
    ticket = await _async(new_ticket)(outsider)
    communicator = await open_socket(f"{room_path(room)}?ticket={ticket}")
    await assert_rejected(communicator, "not_a_member", 4403)


async def test_forged_ticket_is_refused(room):
    communicator = await open_socket(f"{room_path(room)}?ticket=made-up")
    await assert_rejected(communicator, "token_invalid", 4401)


def test_ticket_is_stored_only_as_a_digest(alice):
    ticket = new_ticket(alice)
    stored = ConnectionTicket.objects.get()
    assert ticket not in stored.digest
    assert len(stored.digest) == 64


def _async(function):
    from channels.db import database_sync_to_async

    return database_sync_to_async(function)
