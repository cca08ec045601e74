"""Prepare a benchmark database: migrate, create users, rooms, memberships, tokens, history.

    DJANGO_SETTINGS_MODULE=bench.settings DATABASE_URL=... python -m bench.setup_db SPEC OUT

SPEC (JSON): {"users": N,
              "rooms": [{"key": "s1", "members": [0, 1, ...]}, ...],   # user indexes
              "history": [{"key": "s4-big", "count": 1000000}, ...]}   # rooms to fill
OUT (JSON):  {"users": [{"id", "username", "token"}], "rooms": {key: uuid},
              "history": {key: {"count", "min_id", "max_id"}}}

Everything is inserted in bulk (bulk_create; history with one INSERT ... SELECT) so a million
messages take seconds, not hours. Users get unusable passwords (no hashing): the benchmark
authenticates with access tokens minted here, as POST /api/auth/token/ would return them.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from rest_framework_simplejwt.tokens import AccessToken  # noqa: E402

from chat.domain.models import Membership, Message, Room  # noqa: E402

USERNAME = "bench-u{:05d}"


def ensure_users(count: int) -> list:
    User = get_user_model()
    names = [USERNAME.format(i) for i in range(count)]
    existing = set(User.objects.filter(username__in=names).values_list("username", flat=True))
    missing = [
        User(username=name, password="!", is_active=True) for name in names if name not in existing
    ]
    User.objects.bulk_create(missing, batch_size=1000)
    by_name = {u.username: u for u in User.objects.filter(username__in=names)}
    return [by_name[name] for name in names]


def ensure_room(key: str, members: list) -> Room:
    room, _ = Room.objects.get_or_create(name=f"bench {key}", defaults={"type": "group"})
    have = set(Membership.objects.filter(room=room).values_list("user_id", flat=True))
    Membership.objects.bulk_create(
        [Membership(room=room, user=u, role="member") for u in members if u.pk not in have],
        batch_size=1000,
    )
    return room


def fill_history(room: Room, author, count: int) -> dict:
    """Top the room up to `count` messages with one INSERT ... SELECT."""
    have = Message.objects.filter(room=room).count()
    todo = count - have
    if todo > 0:
        table = Message._meta.db_table
        room_value = Room._meta.pk.get_db_prep_value(room.pk, connection)
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    f"INSERT INTO {table} (room_id, author_id, text, client_id, created_at, "
                    "reply_count, change_seq, mentions, attachments) "
                    "SELECT %s, %s, 'history message ' || g, NULL, "
                    "now() - make_interval(secs => %s - g), 0, 0, '[]', '[]' "
                    "FROM generate_series(1, %s) AS g",
                    [room_value, author.pk, todo, todo],
                )
            else:
                cursor.execute(
                    f"WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g "
                    f"WHERE x < %s) INSERT INTO {table} "
                    "(room_id, author_id, text, client_id, created_at, "
                    "reply_count, change_seq, mentions, attachments) "
                    "SELECT %s, %s, 'history message ' || x, NULL, "
                    "strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', '-' || (%s - x) || ' seconds'), "
                    "0, 0, '[]', '[]' "
                    "FROM g",
                    [todo, room_value, author.pk, todo],
                )
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {table}")
    ids = Message.objects.filter(room=room).order_by("id").values_list("id", flat=True)
    return {"count": count, "min_id": ids.first(), "max_id": ids.last()}


def main(spec_path: str, out_path: str) -> None:
    started = time.monotonic()
    with open(spec_path) as f:
        spec = json.load(f)
    call_command("migrate", "--noinput", verbosity=0)
    users = ensure_users(spec["users"])
    rooms = {}
    for item in spec.get("rooms", []):
        rooms[item["key"]] = ensure_room(item["key"], [users[i] for i in item["members"]])
    history = {}
    for item in spec.get("history", []):
        room = rooms.get(item["key"]) or ensure_room(item["key"], [users[0]])
        rooms[item["key"]] = room
        t0 = time.monotonic()
        history[item["key"]] = fill_history(room, users[0], item["count"])
        history[item["key"]]["insert_seconds"] = round(time.monotonic() - t0, 2)
    out = {
        "vendor": connection.vendor,
        "users": [
            {"id": u.pk, "username": u.username, "token": str(AccessToken.for_user(u))}
            for u in users
        ],
        "rooms": {key: str(room.pk) for key, room in rooms.items()},
        "history": history,
        "setup_seconds": round(time.monotonic() - started, 2),
    }
    with open(out_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
