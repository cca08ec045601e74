"""CORS for the React dev server, and the OpenAPI schema's auth description."""

import pytest
import yaml


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:3000", True),
        ("http://127.0.0.1:3000", True),
        ("https://evil.example", False),
    ],
)
def test_cors_preflight_allows_configured_origins_only(client, origin, allowed):
    response = client.options(
        "/api/chat/rooms/",
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization",
    )
    assert (response.headers.get("Access-Control-Allow-Origin") == origin) is allowed
    if allowed:
        assert "authorization" in response.headers["Access-Control-Allow-Headers"]


def test_cors_origins_follow_the_setting(client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://crm.example.com"]
    response = client.get("/healthz", HTTP_ORIGIN="https://crm.example.com")
    assert response.headers.get("Access-Control-Allow-Origin") == "https://crm.example.com"


@pytest.mark.django_db
def test_schema_documents_jwt_bearer_auth_and_the_chat_endpoints(client):
    schema = yaml.safe_load(client.get("/api/schema/").content)
    schemes = schema["components"]["securitySchemes"]
    assert any(
        s.get("scheme") == "bearer" and s.get("bearerFormat") == "JWT" for s in schemes.values()
    )
    for path in ["/api/chat/rooms/", "/api/chat/direct/", "/api/chat/rooms/{room_id}/access/"]:
        assert path in schema["paths"], path
