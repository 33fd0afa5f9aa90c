"""Errors: one JSON shape everywhere, the OpenAI one, so that its SDK reports the message."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import ModelAPIError, PgaskError

log = logging.getLogger("pgask.api")


def error_response(status: int, message: str, kind: str = "invalid_request_error",
                   headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status, headers=headers)


def validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        loc = error.get("loc", ())
        if error.get("type") == "json_invalid":
            parts.append(f"the body is not valid JSON: {error.get('ctx', {}).get('error', '')} (character {loc[-1]})")
        elif error.get("type") == "model_attributes_type" and tuple(loc) == ("body",):
            parts.append("the body must be a JSON object, sent with Content-Type: application/json")
        else:
            where = ".".join(str(p) for p in loc[1:] if p != "body")  # loc[0] is body, query or path
            parts.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    return "invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return error_response(422, validation_message(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        kind = "authentication_error" if exc.status_code == 401 else "invalid_request_error"
        return error_response(exc.status_code, str(exc.detail), kind, getattr(exc, "headers", None))

    @app.exception_handler(ModelAPIError)
    async def model_failed(request: Request, exc: ModelAPIError):
        return error_response(502, str(exc), "model_api_error")

    @app.exception_handler(PgaskError)
    async def refused(request: Request, exc: PgaskError):
        return error_response(400, str(exc))

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception):
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return error_response(500, f"internal error ({type(exc).__name__}); the server log has the details",
                              "server_error")


def stream_error(exc: Exception) -> dict:
    if isinstance(exc, PgaskError):
        return {"error": {"message": str(exc), "type": "model_api_error" if isinstance(exc, ModelAPIError)
                          else "invalid_request_error"}}
    log.error("unexpected error while streaming an answer", exc_info=exc)
    return {"error": {"message": f"internal error ({type(exc).__name__})", "type": "server_error"}}
