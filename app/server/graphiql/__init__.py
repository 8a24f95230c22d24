"""GraphiQL from the API's own static files, under a Content-Security-Policy that lets the page
load and reach nothing but this origin (a healthcare API loads no scripts from a CDN).

The vendored bundles, their versions and licenses: README.md beside this file.
"""

from __future__ import annotations

import hashlib
import secrets
from functools import cache
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

from starlette.datastructures import QueryParams
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

if TYPE_CHECKING:
    from starlette.responses import Response
    from starlette.types import Scope

_HERE = Path(__file__).parent
STATIC_DIR = _HERE / "static"
# Where app.server.main mounts STATIC_DIR. The page (served at `<root>/graphql`) refers to the
# assets relatively, as `graphiql/static/...`, so it also works under a path prefix.
STATIC_PATH = "/graphiql/static"

SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
_IMMUTABLE = "public, max-age=31536000, immutable"


def content_security_policy(style_nonce: str) -> str:
    """Only this origin, for everything. Styles also allow the `<style>` element GraphiQL's dialogs
    add, through a nonce; `connect-src 'self'` covers same-origin WebSockets too (CSP level 3)."""
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            f"style-src 'self' 'nonce-{style_nonce}'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


@cache
def asset_version() -> str:
    """A digest of the static files: the page asks for `...?v=<digest>`, so those URLs can be
    cached for good and an upgrade still reaches every browser."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.iterdir()):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@cache
def _template() -> Template:
    return Template((_HERE / "index.html").read_text(encoding="utf-8"))


def graphiql_page() -> HTMLResponse:
    nonce = secrets.token_urlsafe(18)
    html = _template().substitute(
        static=STATIC_PATH.lstrip("/"), version=asset_version(), style_nonce=nonce
    )
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": content_security_policy(nonce),
            "Cache-Control": "no-store",
            **SECURITY_HEADERS,
        },
    )


class GraphiQLStaticFiles(StaticFiles):
    """The page's scripts and styles; cached for a year when asked for by the current version."""

    def __init__(self) -> None:
        super().__init__(directory=STATIC_DIR)

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        requested = QueryParams(scope.get("query_string", b"")).get("v")
        response.headers["Cache-Control"] = (
            _IMMUTABLE if requested == asset_version() else "no-cache"
        )
        response.headers.update(SECURITY_HEADERS)
        return response
