"""The OpenAPI schema (/api/schema/) tells the truth: schemathesis fuzzes every operation.

In-process, against the ASGI application daphne serves, as a demo user with a real JWT from the
login endpoint. Each operation gets schema-valid and schema-invalid requests (schemathesis'
coverage phase, then MAX_EXAMPLES fuzzed ones) and every answer is checked: no 5xx, its status
code documented, its body and content type as documented, schema-invalid requests refused (4xx),
schema-valid ones not refused as invalid, authentication enforced where documented.

SCHEMA_FUZZ_SEED=<n> runs other requests than the suite's fixed ones.
The tests after the fuzz pin each drift it found (chat/api/schema.py documents the answers).
"""

from __future__ import annotations

import io
import ipaddress
import os
import re
import uuid

import pytest
import schemathesis
import yaml
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient
from schemathesis.config import SchemathesisConfig

from chat.models import Membership, Message, Room
from crm_backend.asgi import application
from tests.factories import access_token, make_room, make_user
from webhooks import destinations

MAX_EXAMPLES = 25  # fuzzed per operation, after the coverage phase: ~850 requests in ~20 s
DEMO_USER = "admin"
# Every {room_id} is this room, DEMO_USER's: requests get past the room check to the body's.
ROOM_ID = uuid.UUID("15151515-1515-4515-8515-151515151515")

# The schema's "emoji" format (a reaction): one emoji of Unicode's set, as the domain checks.
schemathesis.openapi.format("emoji", st.sampled_from(["👍", "❤️", "🎉", "👍🏽", "🇧🇷", "👨‍👩‍👧"]))
# The schema's "webhook-url" format: where the host resolves decides (403 `not_allowed` for
# loopback and private addresses); addresses, so that no example waits on DNS.
schemathesis.openapi.format(
    "webhook-url",
    st.sampled_from(
        ["https://93.184.215.14/hooks/chat", "http://127.0.0.1:9/h", "https://[2606:4700::1111]/"]
    ),
)

schema = schemathesis.openapi.from_asgi(
    "/api/schema/",
    application,
    config=SchemathesisConfig.from_dict(
        {
            "seed": int(os.environ.get("SCHEMA_FUZZ_SEED", "15")),  # the same requests each run
            "generation": {"max-examples": MAX_EXAMPLES},
            "parameters": {"path.room_id": str(ROOM_ID)},
        }
    ),
    headers={"Host": "localhost"},  # loaded at collection, before tests allow "testserver"
)


@pytest.fixture
def demo_token(transactional_db) -> str:
    """seed_demo's users, DEMO_USER's room with a message, and a JWT from the login endpoint.

    The application answers on its own threads (their own database connections): the data
    must be committed, hence a transactional test."""
    call_command("seed_demo", stdout=io.StringIO())
    users = get_user_model().objects
    admin, maria = users.get(username=DEMO_USER), users.get(username="maria")
    room = Room.objects.create(pk=ROOM_ID, name="Fuzzed", created_by=admin)
    Membership.objects.create(room=room, user=admin, role=Membership.Role.ADMIN)
    Membership.objects.create(room=room, user=maria)
    Message.objects.create(room=room, author=admin, text="hello")
    response = Client().post(
        "/api/auth/token/",
        {"username": DEMO_USER, "password": django_settings.DEMO_PASSWORD},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()["access"]


@pytest.fixture
def webhook_hosts_offline(monkeypatch):
    """Webhook URLs the fuzz makes up name hosts: no example may wait on (or reach) DNS. An
    address is itself; a name resolves nowhere (403 `not_allowed`)."""

    def resolve(host: str, port: int):
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            raise destinations.DestinationRefused(f"the host {host!r} does not resolve") from None

    monkeypatch.setattr(destinations, "resolve", resolve)


@schema.parametrize()
# One database and token per operation, shared by its examples, as a client's session is.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
def test_every_operation_answers_as_its_schema_says(case, demo_token, webhook_hosts_offline):
    cache.clear()  # the login throttle (20/min) would answer most login examples 429
    case.call_and_validate(headers={"Authorization": f"Bearer {demo_token}"})


# --- What the fuzz found, one test each.


@pytest.fixture
def api_schema(client) -> dict:
    return yaml.safe_load(client.get("/api/schema/").content)


def operation(api_schema: dict, method: str, path: str) -> dict:
    return api_schema["paths"][path][method]


def request_schema(api_schema: dict, method: str, path: str) -> dict:
    body = operation(api_schema, method, path)["requestBody"]
    name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    return api_schema["components"]["schemas"][name]


@pytest.mark.django_db
def test_errors_are_documented_in_the_one_error_shape(api_schema):
    expected = {
        ("post", "/api/auth/token/"): {"400", "401", "429"},
        ("get", "/api/chat/rooms/"): {"401", "403"},
        ("get", "/api/chat/rooms/{room_id}/messages/"): {"400", "401", "403", "404"},
        ("patch", "/api/chat/rooms/{room_id}/messages/{message_id}/"): {"400", "401", "403", "404"},
        ("delete", "/api/chat/rooms/{room_id}/members/{user_id}/"): {"401", "403", "404"},
        ("post", "/api/chat/direct/"): {"400", "401", "403", "404"},
    }
    for (method, path), codes in expected.items():
        responses = operation(api_schema, method, path)["responses"]
        assert codes <= responses.keys(), (method, path, sorted(responses))
        for code in codes:
            body = responses[code]["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/Error"}, (method, path, code)
    error = api_schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"code", "detail"}
    assert set(error["properties"]) == {"code", "detail", "fields"}


@pytest.mark.django_db
def test_the_access_pre_flight_documents_no_authentication_errors(api_schema):
    responses = operation(api_schema, "get", "/api/chat/rooms/{room_id}/access/")["responses"]
    assert "401" not in responses  # its token problems are answers (200), not 401s


@pytest.mark.django_db
def test_success_codes_are_the_ones_the_views_answer(api_schema):
    assert set(operation(api_schema, "post", "/api/chat/ws-ticket/")["responses"]) >= {"201"}
    assert "200" not in operation(api_schema, "post", "/api/chat/ws-ticket/")["responses"]
    assert {"200", "201"} <= operation(api_schema, "post", "/api/chat/direct/")["responses"].keys()


@pytest.mark.django_db
def test_patch_bodies_mark_their_fields_required(api_schema):
    edit = request_schema(api_schema, "patch", "/api/chat/rooms/{room_id}/messages/{message_id}/")
    assert edit["required"] == ["message"]
    rename = request_schema(api_schema, "patch", "/api/chat/rooms/{room_id}/")
    assert rename["required"] == ["name"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "name_ok", "message_ok"),
    [
        ("a", True, True),
        (" x ", True, True),
        ("   ", False, False),
        ("\u3000\n\x1c", False, False),  # whitespace to str.strip(), not to JSON Schema's \s
        ("\ufeff", True, True),  # the other way round
        ("a\x00", False, True),  # DRF refuses NUL; a message keeps it, as on the socket
    ],
)
def test_text_refused_blank_is_documented_non_blank(api_schema, text, name_ok, message_ok):
    name = request_schema(api_schema, "patch", "/api/chat/rooms/{room_id}/")["properties"]["name"]
    message = api_schema["components"]["schemas"]["MessageText"]
    assert (name["minLength"], message["minLength"]) == (1, 1)
    assert message["maxLength"] == django_settings.CHAT_MAX_MESSAGE_LENGTH
    assert bool(re.search(name["pattern"], text)) is name_ok
    assert bool(re.search(message["pattern"], text)) is message_ok


@pytest.mark.django_db
def test_a_message_posted_over_rest_keeps_its_nul_characters_as_over_the_socket():
    user = make_user()
    room = make_room(members=[user])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(user)}")
    url = f"/api/chat/rooms/{room.pk}/messages/"
    response = client.post(url, {"message": "antes\x00depois"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["message"] == Message.objects.get().text == "antes\x00depois"
    assert client.get(url).json()["results"][0]["message"] == "antes\x00depois"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/chat/rooms/{room}/messages/", {"message": 0}),
        ("post", "/api/chat/rooms/{room}/messages/", {"message": "hi", "client_id": 7}),
        ("patch", "/api/chat/rooms/{room}/", {"name": 0}),
        ("post", "/api/chat/rooms/", {"name": 1.5, "type": "group"}),
    ],
)
def test_a_number_is_not_text(method, path, body):
    """DRF's CharField took 0 for "0"; the schema (and the WebSocket) say text is a string."""
    user = make_user()
    room = make_room(admins=[user])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(user)}")
    response = getattr(client, method)(path.format(room=room.pk), body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_request"
    assert not Message.objects.exists()
    assert Room.objects.count() == 1 and Room.objects.get().name == "Sala"


@pytest.mark.django_db
def test_a_path_no_view_matches_answers_in_the_error_shape(client):
    response = client.get("/api/chat/rooms/not-a-uuid/")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "no such endpoint"}
    assert "text/html" in client.get("/no-such-page").headers["Content-Type"]
