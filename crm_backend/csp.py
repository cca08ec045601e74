"""Content-Security-Policy for the HTML pages served from /static/ (the test page).

The page keeps its script and style inline (one self-contained file, usable from disk), so the
policy allows exactly those blocks by hash, computed from the file itself: an injected
`<script>` or `onerror=` handler has no matching hash and does not run.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from pathlib import Path

_BLOCK = re.compile(r"<(script|style)(?:\s[^>]*)?>(.*?)</\1>", re.DOTALL | re.IGNORECASE)


@lru_cache(maxsize=32)
def policy_for_html(path: str, mtime: float) -> str:
    html = Path(path).read_text(encoding="utf-8")
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in _BLOCK.findall(html):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        hashes[kind.lower()].append(f"'sha256-{digest}'")
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {' '.join(hashes['script']) or chr(39) + 'none' + chr(39)}",
            f"style-src {' '.join(hashes['style']) or chr(39) + 'none' + chr(39)}",
            # The page talks to its own server by default, or to one the user types in.
            "connect-src 'self' ws: wss: http: https:",
            "img-src 'self' data: blob:",  # attachments' thumbnails, fetched with the token
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def add_static_headers(headers, path: str, url: str) -> None:
    """WhiteNoise hook: security headers on static HTML pages."""
    if path.endswith(".html"):
        headers["Content-Security-Policy"] = policy_for_html(path, Path(path).stat().st_mtime)
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
