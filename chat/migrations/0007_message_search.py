"""Full-text search over messages, kept true by the database itself on every insert, edit
and delete: on PostgreSQL a generated tsvector column with a GIN index, in a text search
configuration of CHAT_SEARCH_LANGUAGE with unaccent ("gerencia" finds "Gerência"); on SQLite
an FTS5 table (unicode61, diacritics removed) kept by triggers. chat.domain.search reads them.
"""

from django.conf import settings
from django.db import migrations

POSTGRES = [
    "CREATE EXTENSION IF NOT EXISTS unaccent",
    "DROP TEXT SEARCH CONFIGURATION IF EXISTS chat_search",
    "CREATE TEXT SEARCH CONFIGURATION chat_search (COPY = {language})",
    "ALTER TEXT SEARCH CONFIGURATION chat_search ALTER MAPPING FOR hword, hword_part, word "
    "WITH unaccent, {language}_stem",
    "ALTER TABLE chat_message ADD COLUMN search_vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector('chat_search'::regconfig, text)) STORED",
    "CREATE INDEX message_search_idx ON chat_message USING GIN (search_vector)",
]
POSTGRES_REVERSE = [
    "DROP INDEX IF EXISTS message_search_idx",
    "ALTER TABLE chat_message DROP COLUMN IF EXISTS search_vector",
    "DROP TEXT SEARCH CONFIGURATION IF EXISTS chat_search",
]
SQLITE = [
    "CREATE VIRTUAL TABLE chat_message_fts USING fts5(text, content='chat_message', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "INSERT INTO chat_message_fts(rowid, text) SELECT id, text FROM chat_message",
    "CREATE TRIGGER chat_message_fts_insert AFTER INSERT ON chat_message BEGIN "
    "INSERT INTO chat_message_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER chat_message_fts_delete AFTER DELETE ON chat_message BEGIN "
    "INSERT INTO chat_message_fts(chat_message_fts, rowid, text) "
    "VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER chat_message_fts_update AFTER UPDATE OF text ON chat_message BEGIN "
    "INSERT INTO chat_message_fts(chat_message_fts, rowid, text) "
    "VALUES ('delete', old.id, old.text); "
    "INSERT INTO chat_message_fts(rowid, text) VALUES (new.id, new.text); END",
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS chat_message_fts_update",
    "DROP TRIGGER IF EXISTS chat_message_fts_delete",
    "DROP TRIGGER IF EXISTS chat_message_fts_insert",
    "DROP TABLE IF EXISTS chat_message_fts",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        statements = statements_by_vendor.get(schema_editor.connection.vendor, [])
        language = settings.CHAT_SEARCH_LANGUAGE
        for statement in statements:
            schema_editor.execute(statement.format(language=language))

    return run


class Migration(migrations.Migration):
    dependencies = [("chat", "0006_room_seen_by")]

    operations = [
        migrations.RunPython(
            _run({"postgresql": POSTGRES, "sqlite": SQLITE}),
            _run({"postgresql": POSTGRES_REVERSE, "sqlite": SQLITE_REVERSE}),
        )
    ]
