"""chat.domain.fields.NulSafeTextField: any string comes back as stored, on every database."""

import pytest

from chat.domain.fields import MARKER
from chat.domain.models import Message
from tests.factories import make_room, make_user

TEXTS = ["antes\x00depois", "\x00", MARKER + "looks like our marker", "plain", "", "😀\x00😀"]


@pytest.mark.django_db
@pytest.mark.parametrize("text", TEXTS)
def test_message_text_round_trips_byte_exact(text):
    author = make_user()
    room = make_room(members=[author])
    message = Message.objects.create(room=room, author=author, text=text)
    assert Message.objects.get(pk=message.pk).text == text
