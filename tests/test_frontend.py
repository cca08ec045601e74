"""/chat/: the reference React app served from its built dist/ (crm_backend/frontend.py)."""

import pytest
from django.test import Client

INDEX_HTML = (
    '<!doctype html><html><head><script type="module" src="/chat/assets/index-abc123.js">'
    "</script></head><body><div id=root></div></body></html>"
)


@pytest.fixture
def dist(settings, tmp_path):
    """A built app as Vite lays it out: index.html, hashed assets, an unhashed public file."""
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(INDEX_HTML)
    (root / "assets" / "index-abc123.js").write_text("console.log('chat')")
    (root / "assets" / "index-abc123.css").write_text("body{margin:0}")
    (root / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (tmp_path / "secret.txt").write_text("outside dist")
    settings.CHAT_FRONTEND_DIST = root
    return root


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.parametrize("path", ["/chat/", "/chat/rooms/ad36ed7e-0000-4000-8000-000000000000"])
def test_the_app_and_its_own_routes_get_index_html_never_cached(dist, path):
    response = Client().get(path)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert response["Cache-Control"] == "no-cache"
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert body(response).decode() == INDEX_HTML


def test_chat_without_slash_redirects_to_the_app(dist):
    response = Client().get("/chat")

    assert response.status_code == 301
    assert response["Location"] == "/chat/"


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("assets/index-abc123.js", "text/javascript"),
        ("assets/index-abc123.css", "text/css"),
    ],
)
def test_hashed_assets_have_their_type_and_a_long_cache(dist, path, content_type):
    response = Client().get(f"/chat/{path}")

    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    assert body(response) == (dist / path).read_bytes()


def test_unhashed_files_are_revalidated(dist):
    response = Client().get("/chat/favicon.svg")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response["Cache-Control"] == "no-cache"


@pytest.mark.parametrize("path", ["assets/index-old999.js", "missing.css", "assets/"])
def test_a_missing_file_is_404_not_the_app(dist, path):
    """index.html answered for a script would be parsed as JavaScript: a confusing failure."""
    response = Client().get(f"/chat/{path}")

    assert response.status_code == 404


@pytest.mark.parametrize("path", ["../secret.txt", "..%2Fsecret.txt", "%2E%2E/secret.txt"])
def test_nothing_outside_dist_is_served(dist, path):
    response = Client().get(f"/chat/{path}")

    assert response.status_code == 404
    assert b"outside dist" not in body(response)


def test_only_reads_are_allowed(dist):
    assert Client().post("/chat/").status_code == 405
    assert Client().head("/chat/").status_code == 200


def test_a_missing_build_says_how_to_build_it(settings, tmp_path):
    settings.CHAT_FRONTEND_DIST = tmp_path / "never-built"

    response = Client().get("/chat/rooms/x")

    assert response.status_code == 503
    assert response["Content-Type"] == "text/html; charset=utf-8"
    text = response.content.decode()
    assert "The reference app is not built" in text
    assert "./scripts/dev" in text
    assert "npm run build" in text
