"""Search over the messages of the rooms a user is a member of: ranked, with highlighted
snippets. PostgreSQL: its full-text search (the `search_vector` column of migration 0007,
`websearch_to_tsquery`, unaccent); SQLite: FTS5. Both indexes follow every insert, edit and
delete by themselves (a generated column, triggers), so search never shows what was deleted.
"""

from __future__ import annotations

import html
import re
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime

from django.db import connections, transaction

from chat.domain.access import key_scope
from chat.domain.models import Membership, Message

MAX_QUERY_LENGTH = 200
# A search ranks the newest this many matches of its query (a chat's answers are mostly
# recent; ranking every match of a common word is what made such a search slow).
CANDIDATES = 1000
# PostgreSQL: the newest this many messages of the user's rooms are read first, in id order;
# their density of matches tells how far back the rest are (_postgres_candidates).
RECENT_ROWS = 10_000
# Around each match in a snippet, then HTML-escaped and turned into <mark>…</mark>: the
# message's own text can never become markup.
_START, _STOP = "\ue000", "\ue001"


@dataclass(frozen=True, slots=True)
class SearchHit:
    message: Message  # its author and room loaded
    snippet: str  # HTML: escaped text with <mark> around the matches
    rank: float  # higher is better, within one search


@dataclass(frozen=True, slots=True)
class SearchFilters:
    room_id: object = None
    author_id: int | None = None
    before: datetime | None = None  # created before
    after: datetime | None = None  # created at or after
    rooms: frozenset | None = None  # an API key's scope: of the user's rooms, these only


def message_search(
    *, user, query: str, filters: SearchFilters, offset: int = 0, limit: int = 20
) -> tuple[list[SearchHit], bool]:
    """A page of the hits for `query` among the messages of the user's rooms, best first;
    returns (hits, has_more). Deleted messages are never found."""
    if fts5_query(query) is None:  # only exclusions, or no word: nothing to find, anywhere
        return [], False
    if key_scope(user) is not None:
        filters = replace(filters, rooms=key_scope(user))
    connection = connections[Message.objects.db]
    if connection.vendor == "postgresql":
        rows = _postgres_rows(query, filters, user.pk, connection, offset, limit)
    else:
        rows = _sqlite_rows(query, filters, user.pk, connection, offset, limit)
    messages = Message.objects.select_related("author", "room").in_bulk([row[0] for row in rows])
    hits = [
        SearchHit(messages[message_id], _highlighted(snippet), float(rank))
        for message_id, rank, snippet in rows[:limit]
        if message_id in messages
    ]
    return hits, len(rows) > limit


def _fetch(connection, sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _filters_sql(
    filters: SearchFilters, user_id: int, connection, *, rooms_as_array: bool = False
) -> tuple[list[str], list]:
    """The conditions every search has (the user's rooms, not deleted) and the asked ones."""
    room_field = Message._meta.get_field("room").target_field
    where = ["m.deleted_at IS NULL"]
    params: list = []
    room = None
    if filters.room_id is not None:
        room = room_field.get_db_prep_value(filters.room_id, connection)
    if rooms_as_array:
        condition, values = _rooms_array(user_id, room)
        where.append(condition)
        params += values
    else:
        members = f"SELECT room_id FROM {Membership._meta.db_table} WHERE user_id = %s"
        where.append(f"m.room_id IN ({members})")
        params.append(user_id)
        if room is not None:
            where.append("m.room_id = %s")
            params.append(room)
    if filters.rooms is not None:
        where.append(_in_rooms(filters.rooms, room_field, connection, params))
    if filters.author_id is not None:
        where.append("m.author_id = %s")
        params.append(filters.author_id)
    moments = ((filters.before, "m.created_at < %s"), (filters.after, "m.created_at >= %s"))
    for moment, condition in moments:
        if moment is not None:
            where.append(condition)
            params.append(connection.ops.adapt_datetimefield_value(moment))
    return where, params


def _in_rooms(rooms: frozenset, room_field, connection, params: list) -> str:
    """The condition "in one of `rooms`", its values appended to `params`."""
    if not rooms:
        return "FALSE"
    params += [room_field.get_db_prep_value(room, connection) for room in rooms]
    return f"m.room_id IN ({', '.join(['%s'] * len(rooms))})"


def _rooms_array(user_id: int, room) -> tuple[str, list]:
    """The user's rooms as an array; with the `room` filter, that room alone if it is one of
    them: with the array as well, PostgreSQL halved its estimate of the room's messages and
    walked the whole table's primary key rather than the room's (room_id, id) index."""
    rooms = list(Membership.objects.filter(user_id=user_id).values_list("room_id", flat=True))
    if room is None:
        return "m.room_id = ANY(%s)", [rooms]
    if str(room) in {str(member_of) for member_of in rooms}:
        return "m.room_id = %s", [room]
    return "FALSE", []


def _postgres_rows(query, filters, user_id, connection, offset, limit) -> list[tuple]:
    """The newest CANDIDATES matches, then ranked, paged and highlighted. Ranking every match
    of a common word (100,000 of a million) took 250-400 ms; and the user's rooms are given
    as an array, not a subquery: joined, PostgreSQL scanned the GIN index once per room
    (bench/search.py, docs/performance.md)."""
    where, params = _filters_sql(filters, user_id, connection, rooms_as_array=True)
    one_room = filters.room_id is not None
    candidates = _postgres_candidates(connection, query, where, params, one_room)
    if not candidates:
        return []
    return _fetch(
        connection,
        f"""
        SELECT page.id, page.rank,
               ts_headline('chat_search', translate(page.text, '{_START}{_STOP}', ''),
                           page.query,
                           'StartSel={_START}, StopSel={_STOP}, MaxWords=30, MinWords=8,
                            MaxFragments=2, FragmentDelimiter=" … "')
        FROM (
            SELECT m.id, m.text, q.query, ts_rank_cd(m.search_vector, q.query) AS rank
            FROM {Message._meta.db_table} m,
                 (SELECT websearch_to_tsquery('chat_search', %s) AS query) q
            WHERE m.id = ANY(%s)
            ORDER BY rank DESC, m.id DESC
            LIMIT %s OFFSET %s
        ) page
        ORDER BY page.rank DESC, page.id DESC
        """,
        [query, candidates, limit + 1, offset],
    )


def _postgres_candidates(
    connection, query: str, where: list[str], params: list, one_room: bool
) -> list[int]:
    """The ids of the newest CANDIDATES matches, newest first. Left to itself, PostgreSQL
    walked the primary key backwards testing `@@` whenever it expected many matches: right
    for a common word, through most of the table for a phrase of two common words (rare, but
    estimated as both words) or a word in 1-3 % of messages. So: read the newest RECENT_ROWS
    messages first (enough for a common word); otherwise their density of matches says how
    far back the rest are, and that id range is searched through the GIN index (ANDed with a
    range of the primary key), then, if still short, everything older."""
    # One room: its newest messages through its (room_id, id) index, not a walk of every
    # room's along the primary key, which PostgreSQL costs as cheaper while a page read out
    # of order costs 4 (the room's rows are on every page either way): 36-40 ms → 8-22 ms.
    with _local_settings(connection, {"random_page_cost": "1.1"} if one_room else {}):
        found, low, high = _recent_matches(connection, query, where, params)
    if len(found) == CANDIDATES or low is None:  # enough, or no more messages to search
        return found
    # The ids the rest should be in, going by the density so far, with a margin of half.
    span = (high - low + 1) * (CANDIDATES - len(found)) * 3 // (2 * max(len(found), 1))
    # Bitmap scans only (the GIN index, ANDed with a range of the primary key): an index
    # scan here is the walk backwards through the table that was the slow path, and
    # PostgreSQL chose it even within a range (it costs `@@` at far less than it takes).
    bitmap_scans_only = {"enable_indexscan": "off", "enable_seqscan": "off"}
    with _local_settings(connection, bitmap_scans_only):
        if span < low:  # else that range would reach the oldest message: search them all
            count = CANDIDATES - len(found)
            found += _older_matches(connection, query, where, params, low, count, low - span)
            low -= span
        if len(found) < CANDIDATES:
            count = CANDIDATES - len(found)
            found += _older_matches(connection, query, where, params, low, count)
    return found


@contextmanager
def _local_settings(connection, settings: dict[str, str]):
    """`settings` (set_config(…, true)) for the queries within, in a transaction (or a
    savepoint if one is open); put back after, and an error rolls them back with it."""
    if not settings:
        yield
        return
    names = list(settings)
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        reads = ", ".join(["current_setting(%s)"] * len(names))
        cursor.execute(f"SELECT {reads}", names)
        saved = cursor.fetchone()
        changes = ", ".join(["set_config(%s, %s, true)"] * len(names))
        cursor.execute(f"SELECT {changes}", [v for name in names for v in (name, settings[name])])
        yield
        restore = [v for pair in zip(names, saved, strict=True) for v in pair]
        cursor.execute(f"SELECT {changes}", restore)


def _recent_matches(connection, query, where, params) -> tuple[list[int], int | None, int]:
    """The matches among the newest RECENT_ROWS messages the filters keep, and those
    messages' lowest and highest ids (None: no older message). The messages are read newest
    first until CANDIDATES matches are found: a common word's are in the first 2,000."""
    rows = _fetch(
        connection,
        f"""
        SELECT id, hit, n FROM (
            SELECT m.id, m.search_vector @@ websearch_to_tsquery('chat_search', %s) AS hit,
                   row_number() OVER (ORDER BY m.id DESC) AS n
            FROM {Message._meta.db_table} m
            WHERE {" AND ".join(where)}
            ORDER BY m.id DESC LIMIT {RECENT_ROWS}
        ) recent
        WHERE hit OR n = 1 OR n = {RECENT_ROWS}
        ORDER BY id DESC LIMIT {CANDIDATES + 2}
        """,
        [query, *params],
    )
    found = [message_id for message_id, hit, _ in rows if hit][:CANDIDATES]
    ends = {n: message_id for message_id, _, n in rows if n in (1, RECENT_ROWS)}
    if len(found) == CANDIDATES or RECENT_ROWS not in ends:  # or every message was read
        return found, None, 0
    return found, ends[RECENT_ROWS], ends[1]


def _older_matches(connection, query, where, params, below: int, count: int, start=None):
    """The newest `count` matches with an id below `below` (and from `start` on, if given)."""
    since = "" if start is None else "AND m.id >= %s"
    rows = _fetch(
        connection,
        f"""
        SELECT m.id FROM {Message._meta.db_table} m
        WHERE m.search_vector @@ websearch_to_tsquery('chat_search', %s)
          AND {" AND ".join(where)} AND m.id < %s {since}
        ORDER BY m.id DESC LIMIT {count}
        """,
        [query, *params, below, *([] if start is None else [start])],
    )
    return [row[0] for row in rows]


def _sqlite_rows(query, filters, user_id, connection, offset, limit) -> list[tuple]:
    where, params = _filters_sql(filters, user_id, connection)
    sql = f"""
        SELECT id, rank, snip FROM (
            SELECT m.id, -bm25(chat_message_fts) AS rank,
                   snippet(chat_message_fts, 0, '{_START}', '{_STOP}', ' … ', 16) AS snip
            FROM chat_message_fts
            JOIN {Message._meta.db_table} m ON m.id = chat_message_fts.rowid
            WHERE chat_message_fts MATCH %s AND {" AND ".join(where)}
            ORDER BY m.id DESC
            LIMIT {CANDIDATES}
        )
        ORDER BY rank DESC, id DESC
        LIMIT %s OFFSET %s
    """
    return _fetch(connection, sql, [fts5_query(query), *params, limit + 1, offset])


_TERM = re.compile(r'(-?)"([^"]*)"|(-?)(\S+)')


def fts5_query(query: str) -> str | None:
    """The query as FTS5 reads it, with the meaning websearch_to_tsquery gives it on
    PostgreSQL: words and "quoted phrases" all required, `-word` excluded, `or` between two
    terms for either. Every term is quoted, so no input is FTS5 syntax. None: nothing to find
    (only exclusions, or no words)."""
    required: list[str] = []
    excluded: list[str] = []
    either = False  # the last term was `or`: the next one joins the one before
    for phrase_minus, phrase, word_minus, word in _TERM.findall(query):
        minus = phrase_minus or word_minus
        text = phrase if (phrase or phrase_minus) else word
        if not (phrase or minus) and word.lower() == "or" and required:
            either = True
            continue
        if not text.strip():
            continue
        quoted = '"' + text.replace('"', '""') + '"'
        if minus:
            excluded.append(quoted)
        elif either:
            required[-1] = f"({required[-1]} OR {quoted})"
            either = False
        else:
            required.append(quoted)
    if not required:
        return None
    match = " AND ".join(required)
    for term in excluded:
        match = f"({match}) NOT {term}"
    return match


_SQLITE_TRIGGERS = {
    "chat_message_fts_insert": "AFTER INSERT ON chat_message BEGIN "
    "INSERT INTO chat_message_fts(rowid, text) VALUES (new.id, new.text); END",
    "chat_message_fts_delete": "AFTER DELETE ON chat_message BEGIN "
    "INSERT INTO chat_message_fts(chat_message_fts, rowid, text) "
    "VALUES ('delete', old.id, old.text); END",
    "chat_message_fts_update": "AFTER UPDATE OF text ON chat_message BEGIN "
    "INSERT INTO chat_message_fts(chat_message_fts, rowid, text) "
    "VALUES ('delete', old.id, old.text); "
    "INSERT INTO chat_message_fts(rowid, text) VALUES (new.id, new.text); END",
}


def sqlite_index_ensure(connection) -> bool:
    """SQLite: put back the FTS5 triggers a migration that rebuilds chat_message drops (SQLite
    alters a table by copying it, triggers not included), and rebuild the index then. Run
    after every migrate (chat.apps); True if anything had to be put back."""
    if connection.vendor != "sqlite":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if "chat_message_fts" not in {row[0] for row in cursor.fetchall()}:
            return False  # before migration 0007
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        missing = set(_SQLITE_TRIGGERS) - {row[0] for row in cursor.fetchall()}
        for name in sorted(missing):
            cursor.execute(f"CREATE TRIGGER {name} {_SQLITE_TRIGGERS[name]}")
        if missing:
            cursor.execute("INSERT INTO chat_message_fts(chat_message_fts) VALUES ('rebuild')")
    return bool(missing)


def _highlighted(snippet: str) -> str:
    escaped = html.escape(snippet or "", quote=False)
    return escaped.replace(_START, "<mark>").replace(_STOP, "</mark>")
