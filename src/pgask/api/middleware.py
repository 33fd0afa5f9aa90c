"""What every request passes before a route: the body limit, the bearer token, the bind check,
and /docs served from local files."""

from __future__ import annotations

import secrets

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException

from ..config import Secret
from ..errors import PgaskError
from ..network import is_loopback
from .errors import error_response


class BodyLimit:
    """Refuses request bodies over a size limit with a JSON 413, whether the size is declared in
    Content-Length (refused before reading) or found while reading a chunked body.

    Starlette's own limit answers a declared oversize body in plain text, whatever the app's handlers say.
    """

    def __init__(self, app, *, default: int, by_path: dict[str, int]):
        self.app, self.default, self.by_path = app, default, by_path

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.by_path.get(scope["path"], self.default)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return await too_large(limit)(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(413, too_large_message(limit))
            return message

        await self.app(scope, limited_receive, send)


def too_large_message(limit: int) -> str:
    return f"request body too large: the limit is {limit:,} bytes"


def too_large(limit: int) -> JSONResponse:
    return error_response(413, too_large_message(limit))


def check_bind(host: str, token: Secret | None) -> None:
    """Only loopback may be served without a token: anyone on the network could read and delete documents."""
    if not token and not is_loopback(host):
        raise PgaskError(
            f"refusing to listen on {host} without PGASK_API_TOKEN: anyone who can reach that address could "
            "read and delete your documents. Set PGASK_API_TOKEN to a long random secret, or listen on 127.0.0.1"
        )


# Open without the token: the liveness check and the API's own description (no data in either).
PUBLIC_PATHS = frozenset({"/healthz", "/docs", "/docs/oauth2-redirect", "/openapi.json"})
# Swagger UI's scripts and styles, served from the swagger-ui-bundle package: /docs works offline.
DOCS_ASSETS = "/docs/assets"


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(DOCS_ASSETS + "/")


def mount_docs(app: FastAPI) -> None:
    """/docs as FastAPI makes it, but with Swagger UI's files served by this server, not a CDN."""
    from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(
            openapi_url=app.openapi_url, title=f"{app.title} - Swagger UI",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def oauth2_redirect():
        return get_swagger_ui_oauth2_redirect_html()


class BearerAuth:
    """Refuses every request but those for PUBLIC_PATHS without `Authorization: Bearer <token>`.

    A middleware rather than a route dependency: it denies by default, so a route added later
    cannot be left open, and it answers before the body is read, so a caller without the token
    cannot make the server parse and spool an upload (FastAPI reads bodies before dependencies).
    """

    def __init__(self, app, *, token: Secret):
        self.app, self.token = app, token.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and not is_public(scope["path"]):
            scheme, _, given = (Headers(scope=scope).get("authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode("latin-1"), self.token):
                response = error_response(
                    401, "missing or wrong bearer token: send the header 'Authorization: Bearer <PGASK_API_TOKEN>'",
                    "authentication_error", {"WWW-Authenticate": "Bearer"})
                return await response(scope, receive, send)
        await self.app(scope, receive, send)
