"""Database settings that change how the product talks to its database."""

import pytest
from django.db import connection

from chat import selectors

pytestmark = pytest.mark.django_db


def test_postgresql_prepares_the_statements_a_connection_repeats(room, alice):
    """History pages, handshakes and messages repeat a few statements: on PostgreSQL they are
    prepared (planned once per connection); SQLite keeps its own options."""
    for _ in range(6):
        selectors.member_message_list(user=alice, room_id=room.pk)

    if connection.vendor != "postgresql":
        assert "server_side_binding" not in connection.settings_dict["OPTIONS"]
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any('FROM "chat_message"' in statement for statement in prepared), prepared
