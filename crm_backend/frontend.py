"""The reference React app (clients/react-demo) at /chat/, served from its built dist/.

One origin for the app, the API and the sockets: no CORS and no second server in production.
Hashed assets (dist/assets/) never change under one name, so browsers keep them a year;
index.html names the current ones, so it is revalidated on every load.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.http import FileResponse, Http404, HttpResponse
from django.utils._os import safe_join
from django.views.decorators.http import require_safe

HASHED_ASSETS_DIR = "assets/"
LONG_CACHE = "public, max-age=31536000, immutable"
# The app's scripts and styles are files of its own origin; it talks to its own server.
APP_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self' ws: wss:",
        "img-src 'self' data: blob:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
CONTENT_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".map": "application/json",
    ".woff2": "font/woff2",
}
NOT_BUILT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Reference app not built</title></head>
<body><h1>The reference app is not built</h1>
<p>The reference app is not built: run <code>./scripts/dev</code>, or <code>npm ci &amp;&amp;
npm run build</code> in <code>clients/</code>, then reload this page.</p>
<p>The test page is at
<a href="/static/test_chat_websocket.html">/static/test_chat_websocket.html</a>.</p>
</body></html>
"""


def dist_dir() -> Path:
    return Path(settings.CHAT_FRONTEND_DIST)


@require_safe
def reference_app(request, path: str = "") -> HttpResponse:
    dist = dist_dir()
    index = dist / "index.html"
    if not index.is_file():
        return HttpResponse(NOT_BUILT_PAGE, status=503, content_type="text/html; charset=utf-8")
    file = dist_file(dist, path)
    if file is not None:
        return asset_response(file, path)
    if looks_like_file(path):
        raise Http404("no such file in the reference app")
    return index_response(index)  # the app's own routes (/chat/rooms/<id>): it routes itself


def dist_file(dist: Path, path: str) -> Path | None:
    if not path or path.endswith("/"):
        return None
    try:
        file = Path(safe_join(dist, path))
    except SuspiciousFileOperation:
        raise Http404("outside the reference app") from None
    return file if file.is_file() and file.name != "index.html" else None


def looks_like_file(path: str) -> bool:
    """A missing script or style must be a 404, not index.html parsed as JavaScript."""
    return path.startswith(HASHED_ASSETS_DIR) or "." in path.rsplit("/", 1)[-1]


def asset_response(file: Path, path: str) -> FileResponse:
    content_type = CONTENT_TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0]
    response = FileResponse(
        file.open("rb"), content_type=content_type or "application/octet-stream"
    )
    response["Cache-Control"] = LONG_CACHE if path.startswith(HASHED_ASSETS_DIR) else "no-cache"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def index_response(index: Path) -> HttpResponse:
    response = HttpResponse(index.read_bytes(), content_type="text/html; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["Content-Security-Policy"] = APP_CSP
    response["X-Content-Type-Options"] = "nosniff"
    response["Referrer-Policy"] = "no-referrer"
    return response
