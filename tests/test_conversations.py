"""Threads, reactions and the recovery of changes (docs/protocol.md, "Threads, reactions and
changes"): each a domain operation, on the socket and over REST alike."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from asgiref.sync import sync_to_async

from chat.domain import selectors, services
from chat.domain.models import Membership, Message, Reaction, Room
from tests.factories import access_token, make_room, make_user
from tests.test_team_chat import api, rest
from tests.ws import joined, open_socket, room_path

pytestmark = pytest.mark.django_db(transaction=True)

QUIET = 0.2


async def watching(room, user, ignore=("presence", "typing", "read")):
    return await joined(room_path(room), token=access_token(user), ignore=ignore)


async def watching_reads(room, user):
    return await watching(room, user, ignore=("presence", "typing"))


def path(room, tail: str = "") -> str:
    return f"/api/chat/rooms/{room.pk}/{tail}"


def post(room, author, text: str, **extra) -> Message:
    return services.message_create(room=room, author=author, text=text, **extra).message


# --- threads ------------------------------------------------------------------------------


async def test_a_reply_reaches_every_member_and_updates_its_roots_summary(room, alice, bob):
    root = await Message.objects.acreate(room=room, author=alice, text="pergunta")
    sender, other = await watching(room, bob), await watching(room, alice)

    await sender.send_json_to({"type": "chat.message", "message": "resposta", "reply_to": root.pk})

    for socket in (sender, other):
        reply = await socket.receive_json_from()
        assert (reply["type"], reply["message"], reply["reply_to"]) == (
            "chat.message",
            "resposta",
            root.pk,
        )
        summary = await socket.receive_json_from()
        assert (summary["type"], summary["id"]) == ("chat.message.updated", root.pk)
        assert summary["reply_count"] == 1
        assert summary["last_reply_at"] == reply["created_at"]
        assert summary["change_seq"] == 1
    await root.arefresh_from_db()
    assert (root.reply_count, root.change_seq) == (1, 1)
    assert await Message.objects.filter(reply_to=root, text="resposta").aexists()
    for socket in (sender, other):
        await socket.disconnect()


def test_a_reply_to_a_reply_joins_the_roots_thread(room, alice, bob):
    root = post(room, alice, "raiz")
    first = post(room, bob, "um", reply_to=root.pk)
    second = post(room, alice, "dois", reply_to=first.pk)

    assert (first.reply_to_id, second.reply_to_id) == (root.pk, root.pk)
    root.refresh_from_db()
    assert root.reply_count == 2 and root.last_reply_at == second.created_at


async def test_a_reply_to_a_message_of_another_room_is_invalid_frame_and_not_stored(
    room, alice, bob
):
    elsewhere = await Room.objects.acreate(name="Outra")
    foreign = await Message.objects.acreate(room=elsewhere, author=alice, text="lá")
    socket = await watching(room, bob)

    for reply_to in (foreign.pk, 10**9, "1", 0, True):
        await socket.send_json_to({"type": "chat.message", "message": "x", "reply_to": reply_to})
        error = await socket.receive_json_from()
        assert (error["type"], error["code"]) == ("error", "invalid_frame"), reply_to

    assert not await Message.objects.filter(text="x").aexists()
    await socket.disconnect()


def test_a_reply_over_rest_is_stored_in_the_thread_and_a_foreign_one_is_404(room, alice, bob):
    root = post(room, alice, "raiz")
    other_room = make_room(members=[bob])
    foreign = post(other_room, bob, "alheia")

    ok = api(bob).post(
        path(room, "messages/"), {"message": "r", "reply_to": root.pk}, format="json"
    )
    refused = api(bob).post(
        path(room, "messages/"), {"message": "r2", "reply_to": foreign.pk}, format="json"
    )

    assert ok.status_code == 201 and ok.json()["reply_to"] == root.pk
    assert (refused.status_code, refused.json()["code"]) == (404, "invalid_frame")
    assert not Message.objects.filter(text="r2").exists()


def test_thread_pages_hold_the_replies_only_with_the_same_cursors(room, alice, bob):
    root = post(room, alice, "raiz")
    replies = [post(room, bob, f"r{n}", reply_to=root.pk) for n in range(5)]
    post(room, alice, "fora do fio")

    latest = api(bob).get(path(room, "messages/"), {"thread": root.pk, "limit": 3}).json()
    older = (
        api(bob)
        .get(path(room, "messages/"), {"thread": root.pk, "before": latest["results"][0]["id"]})
        .json()
    )
    newer = api(bob).get(path(room, "messages/"), {"thread": root.pk, "after": replies[1].pk})

    assert [m["message"] for m in latest["results"]] == ["r2", "r3", "r4"] and latest["has_more"]
    assert [m["message"] for m in older["results"]] == ["r0", "r1"] and not older["has_more"]
    assert [m["message"] for m in newer.json()["results"]] == ["r2", "r3", "r4"]
    history = api(bob).get(path(room, "messages/")).json()["results"]
    assert history[0]["id"] == root.pk and history[0]["reply_count"] == 5
    assert {m["reply_to"] for m in history[1:-1]} == {root.pk} and history[-1]["reply_to"] is None


# --- reactions ----------------------------------------------------------------------------


async def test_a_reaction_reaches_every_member_each_told_whether_they_reacted(room, alice, bob):
    message = await Message.objects.acreate(room=room, author=alice, text="boa")
    reactor, other = await watching(room, bob), await watching(room, alice)

    await reactor.send_json_to({"type": "reaction.add", "message_id": message.pk, "emoji": "👍"})

    mine, theirs = await reactor.receive_json_from(), await other.receive_json_from()
    assert mine["type"] == theirs["type"] == "chat.message.reactions"
    assert mine["id"] == theirs["id"] == message.pk
    assert mine["reactions"] == [{"emoji": "👍", "count": 1, "me": True}]
    assert theirs["reactions"] == [{"emoji": "👍", "count": 1, "me": False}]
    assert mine["change_seq"] == theirs["change_seq"] == 1

    await other.send_json_to({"type": "reaction.add", "message_id": message.pk, "emoji": "👍"})
    assert (await reactor.receive_json_from())["reactions"] == [
        {"emoji": "👍", "count": 2, "me": True}
    ]
    assert (await other.receive_json_from())["reactions"][0]["me"] is True
    for socket in (reactor, other):
        await socket.disconnect()


async def test_adding_a_reaction_twice_changes_nothing_and_announces_nothing(room, alice, bob):
    message = await Message.objects.acreate(room=room, author=alice, text="boa")
    reactor, other = await watching(room, bob), await watching(room, alice)
    frame = {"type": "reaction.add", "message_id": message.pk, "emoji": "🎉"}

    await reactor.send_json_to(frame)
    await other.receive_json_from()
    await reactor.receive_json_from()
    await reactor.send_json_to(frame)

    assert await other.receive_nothing(QUIET), "an unchanged reaction is not announced"
    assert await Reaction.objects.filter(message=message).acount() == 1
    for socket in (reactor, other):
        await socket.disconnect()


async def test_removing_a_reaction_announces_the_counts_left(room, alice, bob):
    message = await Message.objects.acreate(room=room, author=alice, text="boa")
    for user, emoji in ((alice, "👍"), (bob, "👍"), (bob, "❤️")):
        await Reaction.objects.acreate(message=message, user=user, emoji=emoji)
    socket = await watching(room, alice)

    await socket.send_json_to({"type": "reaction.remove", "message_id": message.pk, "emoji": "👍"})

    frame = await socket.receive_json_from()
    assert frame["reactions"] == [
        {"emoji": "👍", "count": 1, "me": False},
        {"emoji": "❤️", "count": 1, "me": False},
    ]
    await socket.send_json_to({"type": "reaction.remove", "message_id": message.pk, "emoji": "👍"})
    assert await socket.receive_nothing(QUIET), "removing what is not there changes nothing"
    await socket.disconnect()


@pytest.mark.parametrize(
    ("emoji", "code"),
    [
        ("a", "invalid_emoji"),
        ("👍👍", "invalid_emoji"),
        ("👍 ", "invalid_emoji"),
        ("", "invalid_emoji"),
        (7, "invalid_frame"),
        (None, "invalid_frame"),
    ],
)
async def test_a_reaction_is_exactly_one_emoji(room, alice, emoji, code):
    message = await Message.objects.acreate(room=room, author=alice, text="boa")
    socket = await watching(room, alice)

    await socket.send_json_to({"type": "reaction.add", "message_id": message.pk, "emoji": emoji})

    error = await socket.receive_json_from()
    assert (error["type"], error["code"]) == ("error", code)
    assert not await Reaction.objects.aexists()
    await socket.disconnect()


@pytest.mark.parametrize("emoji", ["👍🏽", "🇧🇷", "👨‍👩‍👧", "#️⃣", "❤️"])
def test_skin_tones_flags_keycaps_and_zwj_sequences_are_one_emoji(room, bob, emoji):
    message = post(room, bob, "oi")
    change = services.reaction_add(room=room, message_id=message.pk, user=bob, emoji=emoji)
    assert [reaction.emoji for reaction in change.value] == [emoji]


def test_reactions_over_rest_post_201_then_200_and_delete_by_query_or_body(room, alice, bob):
    message = post(room, alice, "boa")
    url = path(room, f"messages/{message.pk}/reactions/")

    first = api(bob).post(url, {"emoji": "👍"}, format="json")
    again = api(bob).post(url, {"emoji": "👍"}, format="json")
    api(alice).post(url, {"emoji": "❤️"}, format="json")
    by_query = api(bob).delete(f"{url}?emoji={quote('👍')}")
    by_body = api(alice).delete(url, {"emoji": "❤️"}, format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == {
        "id": message.pk,
        "reactions": [{"emoji": "👍", "count": 1, "me": True}],
    }
    assert by_query.status_code == 200
    assert by_query.json()["reactions"] == [{"emoji": "❤️", "count": 1, "me": False}]
    assert by_body.json()["reactions"] == []
    assert not Reaction.objects.exists()


def test_reaction_refusals_over_rest(room, alice, bob, outsider):
    message = post(room, alice, "boa")
    url = path(room, f"messages/{message.pk}/reactions/")
    gone = services.message_delete(
        room=room, message_id=post(room, alice, "x").pk, actor=alice
    ).value

    outsiders = api(outsider).post(url, {"emoji": "👍"}, format="json")
    not_emoji = api(bob).post(url, {"emoji": "ok"}, format="json")
    deleted = api(bob).post(
        path(room, f"messages/{gone.pk}/reactions/"), {"emoji": "👍"}, format="json"
    )

    assert (outsiders.status_code, outsiders.json()["code"]) == (404, "room_not_found")
    assert (not_emoji.status_code, not_emoji.json()["code"]) == (400, "invalid_emoji")
    assert (deleted.status_code, deleted.json()["code"]) == (404, "message_not_found")
    assert not Reaction.objects.exists()


def test_history_items_carry_reactions_as_the_requester_sees_them(room, alice, bob):
    message = post(room, alice, "boa")
    plain = post(room, alice, "sem reações")
    services.reaction_add(room=room, message_id=message.pk, user=bob, emoji="👍")
    services.reaction_add(room=room, message_id=message.pk, user=alice, emoji="🎉")

    for user, expected in (
        (bob, [{"emoji": "👍", "count": 1, "me": True}, {"emoji": "🎉", "count": 1, "me": False}]),
        (
            alice,
            [{"emoji": "👍", "count": 1, "me": False}, {"emoji": "🎉", "count": 1, "me": True}],
        ),
    ):
        items = {m["id"]: m for m in api(user).get(path(room, "messages/")).json()["results"]}
        assert items[message.pk]["reactions"] == expected
        assert items[plain.pk]["reactions"] == []


# --- changes: recovered by cursor, as new messages are --------------------------------------


def test_every_change_takes_the_rooms_next_change_seq(room, alice, bob):
    first = post(room, alice, "um")
    second = post(room, alice, "dois")

    edited = services.message_edit(room=room, message_id=first.pk, editor=alice, text="um!")
    reacted = services.reaction_add(room=room, message_id=second.pk, user=bob, emoji="👍")
    post(room, bob, "resposta", reply_to=second.pk)
    deleted = services.message_delete(room=room, message_id=first.pk, actor=alice)

    assert edited.value.change_seq == 1
    assert reacted.announcement.event.change_seq == 2
    assert Message.objects.get(pk=second.pk).change_seq == 3  # the reply changed its root
    assert deleted.value.change_seq == 4
    assert selectors.room_change_seq(room_id=room.pk) == 4


def test_changes_after_a_cursor_give_each_changed_message_once_as_it_is_now(room, alice, bob):
    first, second, third = (post(room, alice, text) for text in ("um", "dois", "três"))
    services.message_edit(room=room, message_id=first.pk, editor=alice, text="um!")
    cursor = selectors.room_change_seq(room_id=room.pk)
    services.reaction_add(room=room, message_id=second.pk, user=bob, emoji="👍")
    services.message_edit(room=room, message_id=third.pk, editor=alice, text="três!")
    services.reaction_add(room=room, message_id=second.pk, user=alice, emoji="👍")

    page = api(bob).get(path(room, "changes/"), {"after": cursor}).json()
    first_page = api(bob).get(path(room, "changes/"), {"after": cursor, "limit": 1}).json()
    rest_page = (
        api(bob)
        .get(path(room, "changes/"), {"after": first_page["results"][0]["change_seq"]})
        .json()
    )

    assert [m["id"] for m in page["results"]] == [third.pk, second.pk], "change order, once each"
    assert page["results"][0]["message"] == "três!"
    assert page["results"][1]["reactions"] == [{"emoji": "👍", "count": 2, "me": True}]
    assert not page["has_more"]
    assert first_page["has_more"] and [m["id"] for m in rest_page["results"]] == [second.pk]
    assert api(bob).get(path(room, "changes/"), {"after": 99}).json()["results"] == []


def test_changes_are_for_members_only_and_need_a_cursor(room, alice, outsider):
    post(room, alice, "um")
    outsiders = api(outsider).get(path(room, "changes/"), {"after": 0})
    no_cursor = api(alice).get(path(room, "changes/"))
    assert (outsiders.status_code, outsiders.json()["code"]) == (404, "room_not_found")
    assert (no_cursor.status_code, no_cursor.json()["code"]) == (400, "invalid_request")


async def test_a_socket_that_missed_changes_recovers_them_from_its_established_cursor(
    room, alice, bob
):
    message = await Message.objects.acreate(room=room, author=alice, text="antes")
    socket = await joined(room_path(room), token=access_token(bob))
    await socket.disconnect()
    cursor = 0  # bob's cursor when he left; the room had no change yet

    await rest(alice, "patch", path(room, f"messages/{message.pk}/"), {"message": "depois"})
    await rest(alice, "post", path(room, f"messages/{message.pk}/reactions/"), {"emoji": "👍"})

    socket = await watching(room, bob)
    await socket.send_json_to({"type": "chat.sync_changes", "after": cursor})
    changes = await socket.receive_json_from()

    assert changes["type"] == "chat.changes" and not changes["has_more"]
    (recovered,) = changes["messages"]
    assert (recovered["id"], recovered["message"]) == (message.pk, "depois")
    assert recovered["reactions"] == [{"emoji": "👍", "count": 1, "me": False}]
    assert recovered["change_seq"] == 2
    await socket.disconnect()


async def test_connection_established_carries_the_rooms_change_seq(room, alice):
    message = await Message.objects.acreate(room=room, author=alice, text="x")
    await rest(alice, "post", path(room, f"messages/{message.pk}/reactions/"), {"emoji": "👍"})

    socket = await open_socket(room_path(room), token=access_token(alice))
    established = await socket.receive_json_from()
    assert established["type"] == "connection.established"
    assert established["room"]["change_seq"] == 1
    await socket.disconnect()


# --- review findings: counters, retries, deleted threads, emoji forms -----------------------


def test_saving_a_room_in_the_admin_never_rewinds_its_change_seq(room, alice, bob, client):
    alice.is_staff = alice.is_superuser = True
    alice.save()
    client.force_login(alice)
    message = post(room, alice, "x")
    url = f"/admin/chat/room/{room.pk}/change/"
    assert "change_seq" not in client.get(url).context["adminform"].form.fields
    # The page was read at change_seq 0; a reaction moves it to 1 before the form is posted.
    services.reaction_add(room=room, message_id=message.pk, user=bob, emoji="👍")

    response = client.post(
        url,
        {
            "name": "Nova",
            "type": room.type,
            "created_by": alice.pk,
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302
    assert selectors.room_change_seq(room_id=room.pk) == 1
    assert Room.objects.get(pk=room.pk).name == "Nova"


def test_a_retried_reply_is_the_stored_one_even_after_its_root_was_deleted(room, alice, bob):
    root = post(room, alice, "raiz")
    body = {"message": "r", "reply_to": root.pk, "client_id": "c-9"}
    first = api(bob).post(path(room, "messages/"), body, format="json")
    services.message_delete(room=room, message_id=root.pk, actor=alice)

    again = api(bob).post(path(room, "messages/"), body, format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert Message.objects.get(pk=root.pk).reply_count == 1


def test_a_deleted_thread_takes_no_new_replies_even_through_a_reply(room, alice, bob):
    root = post(room, alice, "raiz")
    reply = post(room, bob, "um", reply_to=root.pk)
    services.message_delete(room=room, message_id=root.pk, actor=alice)

    refused = api(bob).post(
        path(room, "messages/"), {"message": "dois", "reply_to": reply.pk}, format="json"
    )

    assert (refused.status_code, refused.json()["code"]) == (404, "invalid_frame")
    assert Message.objects.get(pk=root.pk).reply_count == 1


def test_a_thread_id_beyond_any_id_is_an_empty_page(room, bob):
    response = api(bob).get(path(room, "messages/"), {"thread": 2**70})
    assert response.status_code == 200
    assert response.json() == {"results": [], "has_more": False}


def test_deleting_a_user_keeps_the_replies_others_wrote_in_their_threads(room, alice, bob):
    root = post(room, alice, "raiz")
    reply = post(room, bob, "resposta", reply_to=root.pk)

    alice.delete()

    kept = Message.objects.get(pk=reply.pk)
    assert kept.text == "resposta" and kept.reply_to_id is None


def test_an_emoji_and_its_unqualified_form_are_one_reaction(room, alice, bob):
    message = post(room, alice, "boa")
    services.reaction_add(room=room, message_id=message.pk, user=alice, emoji="❤️")
    change = services.reaction_add(room=room, message_id=message.pk, user=bob, emoji="❤")

    assert [(r.emoji, r.count) for r in change.value] == [("❤️", 2)]
    with pytest.raises(services.refusals.InvalidEmoji):
        services.reaction_add(room=room, message_id=message.pk, user=bob, emoji="🏻")


def test_a_message_takes_a_bounded_number_of_different_emoji(room, alice, bob, settings):
    settings.CHAT_MAX_EMOJI_PER_MESSAGE = 2
    message = post(room, alice, "boa")
    url = path(room, f"messages/{message.pk}/reactions/")
    for emoji in ("👍", "🎉"):
        assert api(alice).post(url, {"emoji": emoji}, format="json").status_code == 201

    third = api(bob).post(url, {"emoji": "❤️"}, format="json")
    same = api(bob).post(url, {"emoji": "👍"}, format="json")

    assert (third.status_code, third.json()["code"]) == (409, "too_many_reactions")
    assert same.status_code == 201, "one of the emoji already there is still fine"


# --- "seen by" ------------------------------------------------------------------------------


def test_seen_by_lists_the_members_whose_marker_is_at_or_past_the_message(room, alice, bob):
    carla = make_user("carla")
    Membership.objects.create(room=room, user=carla)
    first, second = post(room, alice, "um"), post(room, alice, "dois")
    services.read_marker_set(room=room, user=bob, message_id=second.pk)
    services.read_marker_set(room=room, user=carla, message_id=first.pk)
    services.read_marker_set(room=room, user=alice, message_id=second.pk)  # the author

    seen_first = api(bob).get(path(room, f"messages/{first.pk}/seen/")).json()
    seen_second = api(bob).get(path(room, f"messages/{second.pk}/seen/")).json()

    assert seen_first == {
        "message_id": first.pk,
        "count": 2,
        "seen_by": [{"id": bob.pk, "username": "bob"}, {"id": carla.pk, "username": "carla"}],
    }
    assert seen_second["count"] == 1 and seen_second["seen_by"][0]["username"] == "bob"
    missing = api(bob).get(path(room, "messages/999999/seen/"))
    assert (missing.status_code, missing.json()["code"]) == (404, "message_not_found")


def test_seen_by_is_for_members_only(room, alice, outsider):
    message = post(room, alice, "um")
    response = api(outsider).get(path(room, f"messages/{message.pk}/seen/"))
    assert (response.status_code, response.json()["code"]) == (404, "room_not_found")


async def test_a_room_that_keeps_markers_private_tells_only_the_readers_own_sockets(
    room, alice, bob
):
    message = await Message.objects.acreate(room=room, author=alice, text="um")
    watcher = await watching_reads(room, alice)
    phone, laptop = await watching_reads(room, bob), await watching_reads(room, bob)

    refused = await rest(bob, "patch", path(room, "settings/"), {"seen_by": False})
    changed = await rest(alice, "patch", path(room, "settings/"), {"seen_by": False})
    for socket in (watcher, phone, laptop):
        updated = await socket.receive_json_from()
        assert (updated["type"], updated["room"]["seen_by"]) == ("room.updated", False)
    await phone.send_json_to({"type": "read", "message_id": message.pk})

    assert (refused.status_code, refused.json()["code"]) == (403, "not_room_admin")
    assert changed.status_code == 200 and changed.json()["seen_by"] is False
    for own in (phone, laptop):
        assert (await own.receive_json_from())["type"] == "read"
    assert await watcher.receive_nothing(QUIET), "other members are not told"
    seen = await rest(alice, "get", path(room, f"messages/{message.pk}/seen/"))
    assert (seen.status_code, seen.json()["code"]) == (403, "not_allowed")
    for socket in (watcher, phone, laptop):
        await socket.disconnect()


async def test_reads_from_one_socket_are_coalesced_to_one_a_second(room, alice, bob, settings):
    settings.CHAT_READ_COALESCE_SECONDS = 0.5
    ids = [
        (await Message.objects.acreate(room=room, author=alice, text=f"m{n}")).pk for n in range(5)
    ]
    watcher = await watching_reads(room, alice)
    reader = await watching_reads(room, bob)

    for message_id in ids:
        await reader.send_json_to({"type": "read", "message_id": message_id})

    first = await watcher.receive_json_from()
    assert (first["type"], first["message_id"]) == ("read", ids[0]), "the first goes at once"
    assert await watcher.receive_nothing(0.3), "the others wait for the interval"
    later = await watcher.receive_json_from(timeout=1)
    assert later["message_id"] == ids[-1], "then one read, the furthest"
    assert await watcher.receive_nothing(0.7)
    membership = await sync_to_async(lambda: room.memberships.get(user=bob))()
    assert membership.last_read_message_id == ids[-1]
    for socket in (watcher, reader):
        await socket.disconnect()


async def test_a_coalesced_read_still_waiting_is_stored_when_the_socket_closes(
    room, alice, bob, settings
):
    settings.CHAT_READ_COALESCE_SECONDS = 30
    first, second = [
        (await Message.objects.acreate(room=room, author=alice, text=t)).pk for t in ("a", "b")
    ]
    reader = await watching_reads(room, bob)
    await reader.send_json_to({"type": "read", "message_id": first})
    await reader.receive_json_from()
    await reader.send_json_to({"type": "read", "message_id": second})
    await reader.send_json_to({"type": "ping"})
    assert (await reader.receive_json_from())["type"] == "pong"

    await reader.disconnect()

    membership = await sync_to_async(lambda: room.memberships.get(user=bob))()
    assert membership.last_read_message_id == second
