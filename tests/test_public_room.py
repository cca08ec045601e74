"""TestChatConsumer: the public `teste` room."""

import pytest

from chat.domain.models import Message
from tests import factories
from tests.ws import assert_rejected, joined, open_socket, room_path

pytestmark = pytest.mark.django_db(transaction=True)

PUBLIC = "/ws/chat/teste/"


async def test_public_room_needs_no_token_and_says_who_you_are():
    communicator = await open_socket(PUBLIC + "?username=Maria")
    assert await communicator.receive_json_from() == {
        "type": "connection.established",
        "room": {"id": "teste", "name": "teste", "type": "public"},
        "user": {"id": None, "username": "Maria"},
    }
    await communicator.disconnect()


async def test_public_room_broadcasts_to_everyone_and_stores_nothing():
    first = await joined(PUBLIC)
    second = await joined(PUBLIC)

    await first.send_json_to({"type": "chat.message", "message": "oi", "username": "Maria"})

    for communicator in (first, second):
        frame = await communicator.receive_json_from()
        assert frame["type"] == "chat.message"
        assert frame["id"] is None
        assert frame["room"] == "teste"
        assert frame["message"] == "oi"
        assert frame["user"] == {"id": None, "username": "Maria"}
    assert await Message.objects.acount() == 0
    await first.disconnect()
    await second.disconnect()


async def test_public_room_default_display_name_is_anonimo():
    communicator = await joined(PUBLIC)
    await communicator.send_json_to({"message": "sem nome"})
    frame = await communicator.receive_json_from()
    assert frame["user"]["username"] == "anônimo"
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", "invalid_json"),
        ('{"message": " "}', "empty_message"),
        ('{"message": "' + "a" * 4001 + '"}', "message_too_long"),
        ('{"type": "nope"}', "unknown_type"),
    ],
)
async def test_public_room_validates_like_real_rooms(text, code):
    communicator = await joined(PUBLIC)
    await communicator.send_to(text_data=text)
    frame = await communicator.receive_json_from()
    assert (frame["type"], frame["code"]) == ("error", code)
    await communicator.disconnect()


async def test_public_room_switched_off_is_4404(settings):
    settings.CHAT_PUBLIC_TEST_ROOM = False
    communicator = await open_socket(PUBLIC)
    await assert_rejected(communicator, "room_not_found", 4404)


async def test_public_room_null_origin_only_with_debug(settings):
    settings.DEBUG = True
    allowed = await joined(PUBLIC, origin="null")
    await allowed.disconnect()
    settings.DEBUG = False
    refused = await open_socket(PUBLIC, origin="null")
    await assert_rejected(refused, "origin_not_allowed", 4403)


async def test_public_room_never_reaches_a_real_room(room, alice):
    member = await joined(room_path(room), token=factories.access_token(alice))
    public = await joined(PUBLIC)
    await public.send_json_to({"message": "vazou?"})
    await public.receive_json_from()
    assert await member.receive_nothing()
    await member.disconnect()
    await public.disconnect()
