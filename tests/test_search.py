"""Search (docs/protocol.md, "Search"): the user's rooms only, ranked, highlighted, paged, on
PostgreSQL's full-text search and on SQLite's FTS5, the index following edits and deletes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from chat.domain import services
from chat.domain.models import Message
from chat.domain.search import fts5_query
from tests.factories import make_room
from tests.test_team_chat import api

pytestmark = pytest.mark.django_db


def post(room, author, text: str) -> Message:
    return services.message_create(room=room, author=author, text=text).message


def search(user, **params):
    response = api(user).get("/api/chat/search/", params)
    assert response.status_code == 200, response.content
    return response.json()


def found(user, **params) -> list[str]:
    return [hit["message"]["message"] for hit in search(user, **params)["results"]]


def test_search_finds_words_regardless_of_accents_and_highlights_them(room, alice, bob):
    post(room, alice, "Reunião da Gerência amanhã às 10h")
    post(room, alice, "almoço no centro")

    body = search(bob, q="gerencia")

    (hit,) = body["results"]
    assert hit["message"]["message"] == "Reunião da Gerência amanhã às 10h"
    assert hit["room"] == {"id": str(room.pk), "name": room.name}
    assert "<mark>Gerência</mark>" in hit["snippet"]
    assert body["next"] is None


def test_search_covers_only_the_rooms_the_user_is_a_member_of(room, alice, bob, outsider):
    secret = make_room(members=[outsider], name="Diretoria")
    post(secret, outsider, "orçamento confidencial")
    post(room, alice, "orçamento aberto")

    assert found(bob, q="orçamento") == ["orçamento aberto"]
    assert found(outsider, q="orçamento") == ["orçamento confidencial"]
    refused = api(bob).get("/api/chat/search/", {"q": "orçamento", "room": str(secret.pk)})
    assert (refused.status_code, refused.json()["code"]) == (404, "room_not_found")


def test_edits_and_deletes_keep_the_index_true(room, alice, bob):
    typo = post(room, alice, "contrato assinado")
    doomed = post(room, alice, "contrato perdido")

    services.message_edit(room=room, message_id=typo.pk, editor=alice, text="proposta assinada")
    services.message_delete(room=room, message_id=doomed.pk, actor=alice)

    assert found(bob, q="contrato") == []
    assert found(bob, q="proposta") == ["proposta assinada"]


def test_phrases_exclusions_and_or(room, alice, bob):
    for text in ("cliente novo em São Paulo", "cliente antigo em Campinas", "fornecedor novo"):
        post(room, alice, text)

    assert found(bob, q='"cliente novo"') == ["cliente novo em São Paulo"]
    assert found(bob, q="cliente -campinas") == ["cliente novo em São Paulo"]
    assert sorted(found(bob, q="paulo or campinas")) == [
        "cliente antigo em Campinas",
        "cliente novo em São Paulo",
    ]
    assert found(bob, q="-cliente") == [], "a search needs a word to find"


@pytest.mark.parametrize("recent_rows", [10_000, 1])
def test_filters_by_room_author_and_time(room, alice, bob, monkeypatch, recent_rows):
    """With RECENT_ROWS 1, PostgreSQL finds the rest with the filters through the GIN index
    (chat.domain.search._older_matches: the user's rooms tested apart)."""
    from chat.domain import search as search_module

    monkeypatch.setattr(search_module, "RECENT_ROWS", recent_rows)
    other = make_room(members=[alice, bob], name="Vendas")
    post(room, alice, "meta de vendas")
    post(room, bob, "meta batida")
    post(other, alice, "meta regional")
    old = post(room, alice, "meta antiga")
    Message.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=30))
    week_ago = (timezone.now() - timedelta(days=7)).isoformat()

    assert sorted(found(bob, q="meta", room=str(room.pk))) == [
        "meta antiga",
        "meta batida",
        "meta de vendas",
    ]
    assert sorted(found(bob, q="meta", **{"from": "alice"})) == [
        "meta antiga",
        "meta de vendas",
        "meta regional",
    ]
    assert found(bob, q="meta", **{"from": str(bob.pk)}) == ["meta batida"]
    assert found(bob, q="meta", before=week_ago) == ["meta antiga"]
    assert "meta antiga" not in found(bob, q="meta", after=week_ago)
    assert found(bob, q="meta", **{"from": "ninguém"}) == []


def test_results_are_ranked_and_paged_by_cursor(room, alice, bob):
    post(room, alice, "prazo")
    post(room, alice, "prazo prazo prazo do prazo final")
    for n in range(3):
        post(room, alice, f"o prazo {n} de outro assunto qualquer com mais palavras")

    first = search(bob, q="prazo", limit=2)
    second = search(bob, q="prazo", limit=2, cursor=first["next"])
    last = search(bob, q="prazo", limit=2, cursor=second["next"])

    ids = [hit["message"]["id"] for page in (first, second, last) for hit in page["results"]]
    assert len(ids) == len(set(ids)) == 5
    assert last["next"] is None
    ranks = [hit["rank"] for page in (first, second, last) for hit in page["results"]]
    assert ranks == sorted(ranks, reverse=True)
    assert first["results"][0]["message"]["message"] == "prazo prazo prazo do prazo final"


def test_a_snippet_never_carries_the_messages_markup(room, alice, bob):
    post(room, alice, "<img src=x onerror=alert(1)> relatório")

    (hit,) = search(bob, q="relatório")["results"]

    assert "<" not in hit["snippet"].replace("<mark>", "").replace("</mark>", "")
    assert "<mark>relatório</mark>" in hit["snippet"]


@pytest.mark.parametrize("candidates", [2, 3, 4, 6])
@pytest.mark.parametrize("one_room", [False, True])
def test_the_newest_matches_are_found_however_far_back_they_are(
    room, alice, bob, monkeypatch, candidates, one_room
):
    """PostgreSQL reads the newest RECENT_ROWS messages first, then a range of ids guessed
    from their density, then everything older (chat.domain.search._postgres_candidates);
    with 4 of them first and matches spread over 24 messages, each step finds the last
    match for one of these sizes. Whichever does, a search ranks the newest CANDIDATES."""
    from chat.domain import search as search_module

    monkeypatch.setattr(search_module, "CANDIDATES", candidates)
    monkeypatch.setattr(search_module, "RECENT_ROWS", 4)
    other = make_room(members=[alice, bob], name="Vendas")
    matching = []
    for n in range(12):
        elsewhere = post(other, alice, "prazo na outra sala" if n % 4 == 0 else "outra sala")
        here = post(room, alice, f"prazo {n}" if n in (0, 1, 5, 9, 10) else f"outro {n}")
        searched = (here,) if one_room else (here, elsewhere)
        matching += [message.pk for message in searched if "prazo" in message.text]
    params = {"q": "prazo", "room": str(room.pk)} if one_room else {"q": "prazo"}

    ids = [hit["message"]["id"] for hit in search(bob, limit=50, **params)["results"]]
    pages, cursor = [], None
    while True:
        page = search(bob, limit=2, **params, **({"cursor": cursor} if cursor else {}))
        pages += [hit["message"]["id"] for hit in page["results"]]
        if not (cursor := page["next"]):
            break

    assert set(ids) == set(sorted(matching, reverse=True)[:candidates])
    assert pages == ids


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "x" * 201}, "q"),
        ({"q": "a", "cursor": "abc"}, "cursor"),
        ({"q": "a", "limit": "0"}, "limit"),
        ({"q": "a", "before": "ontem"}, "before"),
    ],
)
def test_bad_searches_are_400_naming_the_parameter(bob, params, field):
    response = api(bob).get("/api/chat/search/", params)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request" and field in response.json()["fields"]


@pytest.mark.parametrize(
    "query", ['"', "NEAR(a b)", "a AND", "*", "col:x", "(((", "a OR OR b", "^x", "-"]
)
def test_any_text_is_a_query_never_a_syntax_error(room, alice, bob, query):
    post(room, alice, "a b x col")
    assert api(bob).get("/api/chat/search/", {"q": query}).status_code == 200


def test_fts5_queries_quote_every_term():
    assert fts5_query('cliente "são paulo" -campinas') == (
        '("cliente" AND "são paulo") NOT "campinas"'
    )
    assert fts5_query("a or b c") == '("a" OR "b") AND "c"'
    assert fts5_query('x"y') == '"x""y"'
    assert fts5_query("-a") is None


def test_a_migration_that_rebuilds_the_message_table_leaves_sqlite_search_working(room, alice, bob):
    """SQLite copies a table to alter it, dropping its triggers: after every migrate they are
    put back and the index rebuilt (chat.apps)."""
    from django.db import connection

    from chat.domain import search as search_module

    if connection.vendor != "sqlite":
        assert not search_module.sqlite_index_ensure(connection)
        return
    with connection.cursor() as cursor:
        for name in ("insert", "update", "delete"):
            cursor.execute(f"DROP TRIGGER chat_message_fts_{name}")
    post(room, alice, "escrita sem gatilho")

    assert search_module.sqlite_index_ensure(connection)
    assert found(bob, q="gatilho") == ["escrita sem gatilho"]
    post(room, alice, "escrita com gatilho de novo")
    assert len(found(bob, q="gatilho")) == 2
    assert not search_module.sqlite_index_ensure(connection)


def test_markers_typed_into_a_message_do_not_become_marks(room, alice, bob):
    post(room, alice, "reunião \ue001\ue001 amanhã \ue000")
    from django.db import connection

    (hit,) = search(bob, q="reunião")["results"]
    markup = hit["snippet"].replace("<mark>", "").replace("</mark>", "")
    assert "<" not in markup, "never any markup but marks"
    if connection.vendor == "postgresql":
        assert hit["snippet"].count("<mark>") == hit["snippet"].count("</mark>") == 1
    else:  # SQLite's snippet() reads the stored text itself (docs/protocol.md, "Search")
        assert hit["snippet"].count("</mark>") > 1
