"""Search latency over 1,000,000 messages on PostgreSQL (issue 17's target: p99 <= 50 ms).

    .venv/bin/python -m bench.search [--messages 1000000] [--requests 200] [--keep]
    .venv/bin/python -m bench.search --reuse crm_chat_bench_search_<pid>  # measure again

Makes a throwaway database on the local PostgreSQL (dropped afterwards), migrates it, and
fills 20 rooms with messages of 6-12 words drawn by Zipf's law from a vocabulary of 2,000
words (a few in a large share of messages, most in a few hundred), spread over 90 days.
The searching user is a member of 10 of the rooms. Then GET /api/chat/search/ is called in-process
(Django's test client: the view, the query, the serialization; no network), sequentially,
for query kinds from rare to common, and p50/p99 are reported per kind and overall.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
import uuid

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
COMMON = (
    "cliente proposta reunião contrato venda pedido prazo equipe meta relatório "
    "amanhã hoje semana valor preço desconto entrega produto serviço suporte "
    "gerência diretoria financeiro comercial marketing orçamento fatura nota "
    "ligação email agenda visita apresentação demonstração negociação fechamento"
).split()
ROOMS, MEMBER_OF = 20, 10


def vocabulary() -> list[str]:
    rare = [f"termo{n:04d}" for n in range(2000 - len(COMMON))]
    return COMMON + rare


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200, help="per query kind")
    parser.add_argument("--keep", action="store_true", help="keep the database (to EXPLAIN)")
    # Seeding takes minutes and draws new text each time: comparing two versions of the
    # search on one kept database is quicker and compares them on the same messages.
    parser.add_argument("--reuse", metavar="DATABASE", help="measure a kept database again")
    args = parser.parse_args()
    name = args.reuse or f"crm_chat_bench_search_{os.getpid()}"
    url = f"postgres://postgres@127.0.0.1:5432/{name}"
    if not args.reuse:
        _admin(f"CREATE DATABASE {name}")
    try:
        env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "bench.settings"}
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, check=True)
        os.environ.update(env)
        run(args)
    finally:
        if args.keep or args.reuse:
            print(f"kept: {url}")
        else:
            _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(sql)


def run(args) -> None:
    import django

    django.setup()
    from django.test import Client

    if args.reuse:
        user, rooms = seeded_people()
    else:
        user, author, rooms = seed_people()
        started = time.monotonic()
        fill(rooms, author, args.messages)
        seconds = time.monotonic() - started
        print(f"seeded {args.messages:,} messages in {seconds:.1f} s", flush=True)
    from rest_framework_simplejwt.tokens import AccessToken

    client = Client(
        headers={"Authorization": f"Bearer {AccessToken.for_user(user)}"}, HTTP_HOST="localhost"
    )
    queries = query_kinds(rooms[0])
    print(f"| query | matches | p50 ms | p99 ms | ({args.requests} requests each) |")
    print("|---|---:|---:|---:|---|")
    everything = []
    for kind, params in queries.items():
        times = []
        for n in range(args.requests + 10):
            began = time.perf_counter()
            response = client.get("/api/chat/search/", params(n))
            elapsed = time.perf_counter() - began
            assert response.status_code == 200, response.content[:300]
            if n >= 10:
                times.append(elapsed)
        everything += times
        hits = len(response.json()["results"])
        print(f"| {kind} | {hits} on the page | {_ms(times, 0.5)} | {_ms(times, 0.99)} | |")
    print(f"| all | | {_ms(everything, 0.5)} | {_ms(everything, 0.99)} | |")


def _ms(times: list[float], q: float) -> str:
    ordered = sorted(times)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.1f}"


def seed_people():
    from django.contrib.auth import get_user_model

    from chat.domain.models import Membership, Room

    users = get_user_model().objects
    user = users.create_user("searcher", password="x")
    author = users.create_user("author", password="x")
    rooms = [Room.objects.create(id=uuid.uuid4(), name=f"Sala {n}") for n in range(ROOMS)]
    for n, room in enumerate(rooms):
        Membership.objects.create(room=room, user=author)
        if n < MEMBER_OF:
            Membership.objects.create(room=room, user=user)
    return user, author, rooms


def seeded_people():
    """The searcher and the rooms of a database seed_people() filled, in the same order."""
    from django.contrib.auth import get_user_model

    from chat.domain.models import Room

    user = get_user_model().objects.get(username="searcher")
    rooms = [Room.objects.get(name=f"Sala {n}") for n in range(ROOMS)]
    return user, rooms


def fill(rooms, author, count: int) -> None:
    """One INSERT ... SELECT: word k drawn with a probability falling as 1/k (Zipf's law, as in
    real text: index n ** random()), so the first words are in a large share of messages and
    the last ones in a few hundred of a million."""
    from django.db import connection

    words = vocabulary()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO chat_message (room_id, author_id, text, created_at, reply_count, "
            "change_seq, mentions, attachments) "
            "SELECT (%s::uuid[])[1 + g %% %s], %s, "
            "(SELECT string_agg((%s::text[])[floor(pow(%s, random()))::int], ' ') "
            " FROM generate_series(1, 6 + (g %% 7))), "
            "now() - make_interval(secs => (g %% 7776000)), 0, 0, '[]'::jsonb, '[]'::jsonb "
            "FROM generate_series(1, %s) AS g",
            [[str(r.pk) for r in rooms], len(rooms), author.pk, words, len(words), count],
        )
        cursor.execute("ANALYZE chat_message")


def query_kinds(room) -> dict:
    rare = [f"termo{n:04d}" for n in range(1500, 1960)]
    mid = [f"termo{n:04d}" for n in range(0, 40)]
    rng = random.Random(7)
    return {
        "rare word": lambda n: {"q": rng.choice(rare)},
        "mid word": lambda n: {"q": rng.choice(mid)},
        "common word": lambda n: {"q": rng.choice(COMMON[:10])},
        "two words": lambda n: {"q": f"{rng.choice(COMMON)} {rng.choice(mid)}"},
        "phrase": lambda n: {"q": f'"{rng.choice(COMMON)} {rng.choice(COMMON)}"'},
        "common word, one room": lambda n: {"q": rng.choice(COMMON[:10]), "room": str(room.pk)},
    }


if __name__ == "__main__":
    main()
