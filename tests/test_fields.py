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


@pytest.mark.django_db
@pytest.mark.parametrize("text", TEXTS)
def test_history_pages_give_the_text_byte_exact(text):
    """A page is read by its own SQL (chat.domain.selectors): it decodes the column as the ORM."""
    from chat.domain import selectors

    author = make_user()
    room = make_room(members=[author])
    stored = Message.objects.create(room=room, author=author, text=text)
    (row,) = selectors.member_message_list(user=author, room_id=room.pk).results
    assert row.text == text
    assert row.created_at == Message.objects.get(pk=stored.pk).created_at
    assert row.created_at.utcoffset() is not None, "an aware datetime, as the ORM gives"
