"""Property-based fuzzing of the chat consumer, in-process through the real ASGI app.

Whatever text frame a member sends, the consumer never crashes or closes, never leaks a
traceback or a Python repr, and answers only with protocol frames (chat.message, pong,
chat.history, the room's broadcasts, or an error frame with one of the protocol's codes). A frame
stores at most one message, byte-exact, and every chat.message frame either socket receives is a
stored message, field for field: nothing unstored is ever broadcast.

Hypothesis re-runs the test body, not the fixtures, so every example runs on one event loop
(an asyncio.Runner) with one pair of sockets (fresh ones after a failed example); messages
accumulate, so each example looks only at the rows stored after its own start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from django.core.cache import cache
from django.db.models import Max
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from rest_framework.test import APIClient

from chat import json_input, protocol
from chat.domain.models import Message
from chat.json_input import MAX_JSON_DEPTH
from chat.protocol import CLIENT_TYPES
from tests import factories
from tests.security.conftest import (
    FRAME_ERROR_CODES,
    REJECTION_CODES,
    assert_no_leak,
    hang_up,
    send_text,
)
from tests.ws import joined, open_socket, room_path

pytestmark = pytest.mark.django_db(transaction=True)

# Bounded so the whole module takes well under a minute on a shared 2-core machine.
FUZZ = hypothesis_settings(
    max_examples=200,
    deadline=None,
    database=None,  # no example database: a failure prints its example instead
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FUZZ_HANDSHAKES = hypothesis_settings(FUZZ, max_examples=100)
# Everything the server may send on an open room socket. Broadcasts of other members'
# actions (presence, typing, read markers, edits, deletions) may interleave with any reply.
SERVER_TYPES = {
    "chat.message",
    "chat.changes",
    "chat.message.reactions",
    "pong",
    "chat.history",
    "error",
    "presence",
    "typing",
    "read",
    "chat.message.updated",
    "chat.message.deleted",
}
KEYS = st.sampled_from(
    ["type", "message", "client_id", "after", "message_id", "is_typing", "user", "room", "id"]
)
LONE_SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8) | KEYS, children, max_size=4)
    ),
    max_leaves=12,
)
types = st.sampled_from(sorted(CLIENT_TYPES)) | st.text(max_size=20) | json_values
frame_objects = st.fixed_dictionaries(
    {},
    optional={
        "type": types,
        "message": st.text(min_size=1, max_size=300) | json_values,
        "client_id": st.text(min_size=1, max_size=70) | json_values,
        "after": st.integers(min_value=-5, max_value=2**64) | json_values,
        "username": st.text(max_size=60) | json_values,
        "message_id": st.integers(min_value=-2, max_value=2**64) | json_values,
        "is_typing": st.booleans() | json_values,
        "user": json_values,
        "room": json_values,
        "id": json_values,
    },
)
# Well-formed frames, so that examples also get past the parser and store, edit and sync.
valid_frames = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(CLIENT_TYPES)), "message": st.text(min_size=1, max_size=300)},
    optional={
        "client_id": st.text(min_size=1, max_size=64),
        "after": st.integers(min_value=0, max_value=2**63),
        "message_id": st.integers(min_value=1, max_value=60),
        "is_typing": st.booleans(),
    },
)
# JSON text Python's parser chokes on: nesting around and far past the bound (RecursionError
# at ~1,000 levels), numbers past float range or past int()'s 4,300 digits.
deep_json = st.integers(min_value=MAX_JSON_DEPTH - 2, max_value=3000).flatmap(
    lambda depth: st.sampled_from(["[" * depth + "]" * depth, '{"a":' * depth + "0" + "}" * depth])
)
huge_numbers = st.sampled_from(["1e400", "-1e400", "1e-400", "-0.0"]) | st.integers(
    min_value=4200, max_value=5000
).map(lambda digits: "9" * digits)
hostile_json = deep_json | st.builds(
    lambda key, raw: '{"message": "x", ' + json.dumps(key) + ": " + raw + "}",
    KEYS | st.just("extra"),
    deep_json | huge_numbers,
)
text_frames = st.one_of(
    st.text(max_size=300),
    valid_frames.map(json.dumps),
    st.text(max_size=300).map(lambda message: json.dumps({"message": message})),
    frame_objects.map(json.dumps),
    frame_objects.map(lambda frame: json.dumps(frame, ensure_ascii=False)),
    json_values.map(json.dumps),
    # JSON escapes of characters that cannot be encoded as UTF-8
    st.builds(lambda c: json.dumps({"message": f"a{c}b"}), LONE_SURROGATES),
    hostile_json,
)


@dataclass
class Sockets:
    """The sender's and the listener's sockets, shared by all examples."""

    room: object
    alice: object
    bob: object
    sender: object = None
    listener: object = None
    dirty: bool = True  # no sockets yet, or an example failed half-way through

    async def ready(self) -> None:
        """Fresh sockets after a failed example, so shrinking never sees its leftovers."""
        if not self.dirty:
            return
        for communicator in (self.sender, self.listener):
            if communicator is not None:
                with contextlib.suppress(Exception):  # already reported by the failed example
                    await hang_up(communicator)
        path = room_path(self.room)
        self.sender = await joined(path, token=factories.access_token(self.alice))
        self.listener = await joined(path, token=factories.access_token(self.bob))
        self.dirty = False


@pytest.fixture(scope="module", autouse=True)
def hypothesis_home(tmp_path_factory):
    """Hypothesis caches (constants, unicode data) go to a temporary directory, not the repo."""
    set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    yield
    set_hypothesis_home_dir(None)


@pytest.fixture
def runner():
    with asyncio.Runner() as runner:
        yield runner


def test_fuzz_any_text_frame_gets_a_protocol_answer(runner, room, alice, bob, settings):
    # Rate limits and frame budgets would turn the fuzzer's stream of frames into rate_limited;
    # they have their own tests.
    settings.CHAT_RATE_LIMIT_BURST = settings.CHAT_USER_RATE_LIMIT_BURST = 10**6
    settings.CHAT_FRAME_BUDGETS = dict.fromkeys(settings.CHAT_FRAME_BUDGETS, (10**6, 10**6))
    state = Sockets(room, alice, bob)

    @FUZZ
    @given(text=text_frames)
    def one_frame(text: str) -> None:
        runner.run(exchange(state, text))

    one_frame()
    runner.run(finish(state))


async def exchange(state: Sockets, text: str) -> None:
    await state.ready()
    state.dirty = True
    await check_exchange(state, text)
    state.dirty = False


async def check_exchange(state: Sockets, text: str) -> None:
    before_id = await last_id()
    await send_text(state.sender, text)
    await send_text(state.sender, '{"type": "ping"}')  # a fence for the direct replies
    replies = await frames_until(state.sender, pongs=2 if _is_ping(text) else 1)

    new = {m.id: m async for m in Message.objects.filter(id__gt=before_id).select_related("author")}
    assert len(new) <= 1, "one frame stores at most one message"
    sent = _sent_message(text)
    for message in new.values():
        assert message.text == sent, "stored byte-exact"
        assert message.author_id == state.alice.pk
    # Each new message reaches both sockets, exactly as stored (broadcasts may trail the fence).
    replies += await frames_until(state.sender, message_ids=set(new) - _message_ids(replies))
    heard = await frames_until(state.listener, message_ids=set(new))
    for frame in replies + heard:
        if frame["type"] == "chat.message":
            await assert_matches_stored(frame)


def _message_ids(frames: list[dict]) -> set[int]:
    return {frame["id"] for frame in frames if frame["type"] == "chat.message"}


async def frames_until(communicator, *, pongs: int = 0, message_ids: set[int] = frozenset()):
    """Read frames until `pongs` pongs and a chat.message for each of `message_ids` arrived.

    Every frame read on the way must be a protocol frame: no crash, no close, no leak.
    """
    frames, waiting = [], set(message_ids)
    while pongs or waiting:
        frame = protocol_frame(await communicator.receive_output(timeout=3))
        pongs -= frame == {"type": "pong"}
        if frame["type"] == "chat.message":
            waiting.discard(frame["id"])
        frames.append(frame)
    return frames


def protocol_frame(output: dict) -> dict:
    assert output["type"] == "websocket.send", f"socket closed: {output}"
    assert_no_leak(output["text"])
    frame = json.loads(output["text"])
    assert frame["type"] in SERVER_TYPES, frame
    if frame["type"] == "error":
        assert frame["code"] in FRAME_ERROR_CODES, frame
        # The database is up: a write that fails is input the parser should have refused.
        assert frame["code"] != "not_persisted", frame
        assert isinstance(frame["detail"], str)
    return frame


async def assert_matches_stored(frame: dict) -> None:
    """A chat.message frame is a stored message, field for field: nothing unstored is sent."""
    stored = await Message.objects.select_related("author").aget(id=frame["id"])
    assert frame == protocol.message_payload(stored)


async def last_id() -> int:
    return (await Message.objects.aaggregate(last=Max("id")))["last"] or 0


async def finish(state: Sockets) -> None:
    for communicator in (state.sender, state.listener):
        while not await communicator.receive_nothing(timeout=0.2):
            frame = protocol_frame(await communicator.receive_output())
            if frame["type"] == "chat.message":
                await assert_matches_stored(frame)
    await hang_up(state.sender)
    await hang_up(state.listener)


def _is_ping(text: str) -> bool:
    try:
        frame = json_input.loads(text)
    except ValueError:
        return False
    if not (isinstance(frame, dict) and frame.get("type") == "ping"):
        return False
    try:  # a ping with an invalid client_id is refused as any frame would be
        protocol.valid_client_id(frame.get("client_id"))
    except protocol.ProtocolError:
        return False
    return True


def _sent_message(text: str):
    try:
        return json_input.loads(text).get("message")
    except (ValueError, AttributeError):
        return None


def test_fuzz_public_room_any_text_frame_gets_a_protocol_answer(runner, db, settings):
    """The anonymous public room parses frames like a real room and must survive them too."""
    settings.CHAT_RATE_LIMIT_BURST = settings.CHAT_PUBLIC_IP_RATE_LIMIT_BURST = 10**6
    settings.CHAT_FRAME_BUDGETS = dict.fromkeys(settings.CHAT_FRAME_BUDGETS, (10**6, 10**6))
    sockets = {}

    async def exchange(text: str) -> None:
        if sockets.get("public") is None:
            sockets["public"] = await joined("/ws/chat/teste/")
        public, sockets["public"] = sockets["public"], None  # fresh after a failed example
        await send_text(public, text)
        await send_text(public, '{"type": "ping"}')
        await frames_until(public, pongs=2 if _is_ping(text) else 1)
        sockets["public"] = public

    @FUZZ_HANDSHAKES
    @given(text=text_frames)
    def one_frame(text: str) -> None:
        runner.run(exchange(text))

    one_frame()
    if sockets.get("public") is not None:
        runner.run(hang_up(sockets["public"]))


handshake_parts = st.text(
    st.characters(codec="utf-8", exclude_characters="/?#"), min_size=0, max_size=60
)


def test_fuzz_any_handshake_is_established_or_refused_with_a_protocol_code(
    runner, room, alice, settings
):
    """Random room ids, tokens, origins and paths: established, or refused with a reason."""
    settings.CHAT_FAILED_HANDSHAKES_BURST = 10**6
    good = factories.access_token(alice)

    @FUZZ_HANDSHAKES
    @given(
        room_part=st.sampled_from([str(room.pk)]) | handshake_parts,
        token=st.sampled_from([good, None]) | st.text(max_size=200),
        origin=st.none() | st.text(max_size=80) | st.just("http://localhost:3000"),
        prefix=st.sampled_from(["/ws/chat/", "/ws/", "/", "/ws/chat/teste/"]),
    )
    def one_handshake(room_part, token, origin, prefix):
        runner.run(handshake(f"{prefix}{room_part}/", token, origin))

    one_handshake()
    assert Message.objects.count() == 0


async def handshake(path: str, token: str | None, origin: str | None) -> None:
    communicator = await open_socket(
        quote(path, safe="/"),
        token=quote(token, safe="") if token is not None else None,
        origin=origin,
    )
    output = await communicator.receive_output(timeout=3)
    assert output["type"] == "websocket.send", output
    assert_no_leak(output["text"])
    frame = json.loads(output["text"])
    if frame["type"] == "error":
        assert frame["code"] in REJECTION_CODES, frame
        assert frame["code"] != "internal_error", (path, token, origin)
        closed = await communicator.receive_output(timeout=3)
        assert closed["type"] == "websocket.close"
        assert 4000 <= closed["code"] < 5000, closed
    else:
        assert frame["type"] == "connection.established", frame
    await hang_up(communicator)


rest_bodies = st.one_of(
    st.text(max_size=200),
    hostile_json,
    json_values.map(json.dumps),
    frame_objects.map(json.dumps),
    st.fixed_dictionaries(
        {},
        optional={
            key: json_values | st.text(max_size=40)
            for key in ("username", "password", "refresh", "name", "type", "message", "user_id")
        },
    ).map(json.dumps),
)


def test_fuzz_any_rest_body_is_answered_without_a_server_error(room, alice):
    """Login, refresh, room creation and message edits: whatever the body, a 2xx or 4xx."""
    message = Message.objects.create(room=room, author=alice, text="antes")
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {factories.access_token(alice)}")
    paths = st.sampled_from(
        [
            ("post", "/api/auth/token/"),
            ("post", "/api/auth/token/refresh/"),
            ("post", "/api/chat/rooms/"),
            ("patch", f"/api/chat/rooms/{room.pk}/messages/{message.pk}/"),
        ]
    )

    @FUZZ_HANDSHAKES
    @given(target=paths, body=rest_bodies)
    def one_request(target, body):
        cache.clear()  # the login throttle counts in the cache
        method, path = target
        response = getattr(client, method)(path, data=body, content_type="application/json")
        assert response.status_code < 500, (path, body[:200], response.content[:300])
        assert_no_leak(response.content.decode())

    one_request()
