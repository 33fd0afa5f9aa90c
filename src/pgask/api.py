"""The HTTP API (`pgask serve`): FastAPI over one KnowledgeBase.

Every route that touches the knowledge base is a plain `def`, so FastAPI runs it on its thread
pool: embedding and database work never block the event loop. Streams are Server-Sent Events
fed by `KnowledgeBase.ask_events`, whose first event is awaited before the response starts, so
that a question that cannot be answered at all (an empty knowledge base, say) still gets a
proper HTTP status.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import Any, Iterator, Literal

from fastapi import APIRouter, Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from fastapi.sse import EventSourceResponse, format_sse_event
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException

from . import __version__
from .answer import Answer
from .config import MAX_K, Secret
from .errors import ModelAPIError, PgaskError
from .ingest import uploads
from .kb import KnowledgeBase
from .search import Hit

log = logging.getLogger("pgask.api")

MAX_BODY_BYTES = 1_000_000  # JSON requests; uploads have PGASK_MAX_FILE_MB
MAX_QUESTION_CHARS = 4_000
MAX_MESSAGE_CHARS = 32_000  # one earlier turn of a conversation
MAX_MESSAGES = 200
MAX_PAGE = 1_000
MODEL_ID = "pgask"  # the one model /v1/chat/completions serves
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


# --- request and response bodies -------------------------------------------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt option is an error, not silently ignored


class Turn(Strict):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_MESSAGE_CHARS)


class Selection(Strict):
    """Which passages may be retrieved, shared by search and ask."""

    mode: Literal["vector", "keyword", "hybrid"] | None = Field(
        None, description="vector, keyword (BM25) or hybrid (both, fused by rank); default PGASK_SEARCH_MODE.")
    filter: dict[str, Any] | None = Field(
        None, description='Only documents whose metadata contains this object, e.g. {"product": "gpdb"}.')
    source: str | None = Field(None, max_length=MAX_QUESTION_CHARS,
                               description="Only documents whose source starts with this, e.g. a folder.")

    def selection(self) -> dict[str, Any]:
        return {"mode": self.mode, "filter": self.filter, "source": self.source}


class SearchRequest(Selection):
    query: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    k: int = Field(5, ge=1, le=MAX_K, description=f"How many passages (at most {MAX_K}).")
    threshold: float | None = Field(None, ge=-1.0, le=1.0, description="Minimum cosine similarity (default: none).")
    metric: Literal["cosine", "l2", "ip"] = "cosine"


class AskRequest(Selection):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    history: list[Turn] = Field(
        default_factory=list, max_length=MAX_MESSAGES,
        description="Earlier turns of the conversation, oldest first; a follow-up question is made standalone from them.",
    )
    k: int | None = Field(None, ge=1, le=MAX_K, description=f"How many passages (default PGASK_TOP_K, at most {MAX_K}).")
    threshold: float | None = Field(None, ge=-1.0, le=1.0,
                                    description="Minimum cosine similarity of a passage (default PGASK_THRESHOLD).")
    stream: bool = Field(False, description="Server-Sent Events: question, token..., sources, done.")


@dataclass
class Source(Hit):
    n: int = field(kw_only=True)  # the number answers cite as [n]


class SearchResponse(BaseModel):
    query: str
    results: list[Hit]


class AskResponse(BaseModel):
    question: str
    standalone_question: str
    answer: str
    mode: Literal["llm", "extractive", "none"]
    sources: list[Source]
    usage: dict | None = None


class DocumentInfo(BaseModel):
    id: int
    source: str
    title: str
    chunks: int
    metadata: dict
    updated_at: datetime


class DocumentPage(BaseModel):
    total: int
    limit: int
    offset: int
    documents: list[DocumentInfo]


class UploadedDocument(DocumentInfo):
    status: Literal["added", "updated", "unchanged"]


class DeletedDocument(BaseModel):
    id: int
    source: str
    deleted: bool = True


class Health(BaseModel):
    status: str
    database: str
    model: str
    dim: int


class ChatMessage(BaseModel):
    """An OpenAI chat message; content as text or as a list of parts of which the text parts count."""

    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.get("text") or "" for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    """The OpenAI chat completions request; sampling options are accepted and have no effect."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    stream_options: dict | None = None


class ErrorBody(BaseModel):
    message: str
    type: str


class Error(BaseModel):
    error: ErrorBody


ERRORS = {code: {"model": Error} for code in (400, 401, 404, 413, 415, 422)}


# --- errors: one JSON shape everywhere, the OpenAI one, so that its SDK reports the message -------


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


# --- auth and binding --------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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


# --- streams -------------------------------------------------------------------------------------


def started(events: Iterator[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    """The events with the first one already produced: its error becomes the HTTP response."""
    first = next(events)
    return chain([first], events)


def sse(event: str | None, data: Any) -> bytes:
    return format_sse_event(event=event, data_str=data if isinstance(data, str) else json.dumps(data, default=str))


def stream_error(exc: Exception) -> dict:
    if isinstance(exc, PgaskError):
        return {"error": {"message": str(exc), "type": "model_api_error" if isinstance(exc, ModelAPIError)
                          else "invalid_request_error"}}
    log.error("unexpected error while streaming an answer", exc_info=exc)
    return {"error": {"message": f"internal error ({type(exc).__name__})", "type": "server_error"}}


def ask_stream(events: Iterator[tuple[str, Any]], question: str) -> Iterator[bytes]:
    """question -> token... -> sources -> done, or an error event where it stops."""
    try:
        for kind, value in events:
            if kind == "question":
                yield sse("question", {"question": question, "standalone_question": value})
            elif kind == "token":
                yield sse("token", {"text": value})
            else:
                answer: Answer = value
                full = answer.as_dict()
                yield sse("sources", {"mode": full["mode"], "sources": full["sources"]})
                yield sse("done", {"answer": full["answer"], "usage": full.get("usage")})
    except Exception as exc:  # noqa: BLE001 - the response has started: report in the stream
        yield sse("error", stream_error(exc))


def sources_footer(answer: Answer) -> str:
    """The numbered sources as text, for chat front-ends that show only the message content."""
    if not answer.sources:
        return ""
    lines = [f"[{n}] {hit.cited_as()}" for n, hit in enumerate(answer.sources, 1)]
    return "\n\nSources:\n" + "\n".join(lines)


def completion_extras(answer: Answer) -> dict:
    full = answer.as_dict()
    return {"sources": full["sources"], "standalone_question": full["standalone_question"], "mode": full["mode"]}


def completion_usage(answer: Answer) -> dict | None:
    if not answer.usage:
        return None
    tokens_in, tokens_out = answer.usage["tokens_in"], answer.usage["tokens_out"]
    return {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}


def completion_stream(events: Iterator[tuple[str, Any]], include_usage: bool) -> Iterator[bytes]:
    """OpenAI chat.completion.chunk events: role, content deltas, the sources, finish, [usage], [DONE]."""
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": MODEL_ID}

    def chunk(delta: dict, finish: str | None = None, **extra) -> bytes:
        return sse(None, {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})

    try:
        yield chunk({"role": "assistant", "content": ""})
        for kind, value in events:
            if kind == "token":
                yield chunk({"content": value})
            elif kind == "answer":
                if footer := sources_footer(value):
                    yield chunk({"content": footer})
                yield chunk({}, "stop", **completion_extras(value))
                if include_usage and (used := completion_usage(value)):
                    yield sse(None, {**head, "choices": [], "usage": used})
    except Exception as exc:  # noqa: BLE001 - the SDK raises an APIError for a chunk with "error"
        yield sse(None, stream_error(exc))
    yield sse(None, "[DONE]")


def conversation(messages: list[ChatMessage]) -> tuple[str, list[dict]]:
    """(the question: the last user message, the earlier user and assistant turns)."""
    last = messages[-1]
    if last.role != "user" or not last.text.strip():
        raise PgaskError("the last message must be a user message with text: it is the question")
    if len(last.text) > MAX_QUESTION_CHARS:
        raise PgaskError(f"the question is longer than {MAX_QUESTION_CHARS} characters")
    history = [{"role": m.role, "content": m.text} for m in messages[:-1] if m.role in ("user", "assistant")]
    return last.text, history


# --- the app -------------------------------------------------------------------------------------


def create_app(kb: KnowledgeBase) -> FastAPI:
    """The API over `kb`; every route but PUBLIC_PATHS needs the bearer token when PGASK_API_TOKEN is set."""
    settings = kb.settings
    app = FastAPI(
        title="pgask", version=__version__,
        description="Cited answers from your documents, stored and searched in PostgreSQL + pgvector.",
        docs_url=None, redoc_url=None,  # /docs is mounted below with local assets; ReDoc has only a CDN build
    )
    mount_docs(app)
    upload_bytes = settings.max_file_mb * 1_000_000 + 100_000  # the file and its multipart wrapping
    app.add_middleware(BodyLimit, default=MAX_BODY_BYTES, by_path={"/v1/documents": upload_bytes})
    if settings.api_token:  # added last, so it runs first
        app.add_middleware(BearerAuth, token=settings.api_token)
    install_error_handlers(app)
    # the scheme, for the OpenAPI description; BearerAuth enforces it
    bearer = HTTPBearer(auto_error=False, description="The value of PGASK_API_TOKEN.")
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(bearer)], responses=ERRORS)

    @app.get("/healthz", response_model=Health, responses={503: {"model": Error}})
    def healthz():
        """Database reachable and embedding model loaded. Needs no token."""
        try:
            return {"status": "ok", **kb.health()}
        except Exception as exc:  # noqa: BLE001 - unhealthy whatever the cause; say which
            return error_response(503, f"not ready: {exc}", "unavailable")

    @v1.post("/search", response_model=SearchResponse)
    def search(body: SearchRequest):
        """The passages closest to `query`, best first."""
        hits = kb.search(body.query, k=body.k, threshold=body.threshold, metric=body.metric, **body.selection())
        return {"query": body.query, "results": [h.as_dict() for h in hits]}

    @v1.post("/ask", response_model=AskResponse, responses={200: {"content": {"text/event-stream": {}}}})
    def ask(body: AskRequest):
        """A cited answer. With `stream: true`, Server-Sent Events: `question` (the standalone question),
        `token`... (the answer as written), `sources`, then `done`; or `error`."""
        options = {"history": [t.model_dump() for t in body.history], "k": body.k, "threshold": body.threshold,
                   **body.selection()}
        if not body.stream:
            return kb.ask(body.question, **options).as_dict()
        events = started(kb.ask_events(body.question, **options))
        return EventSourceResponse(ask_stream(events, body.question), headers=SSE_HEADERS)

    @v1.get("/documents", response_model=DocumentPage)
    def list_documents(limit: int = Query(50, ge=1, le=MAX_PAGE), offset: int = Query(0, ge=0)):
        """Stored documents ordered by source, one page at a time."""
        return kb.list_documents(limit=limit, offset=offset)

    @v1.post("/documents", response_model=UploadedDocument, status_code=201)
    def upload(file: UploadFile = File(..., description="A .md .txt .rst .html or .pdf file.")):
        """Save a file under PGASK_HOME/uploads and ingest it; a file of the same name is replaced."""
        try:
            return kb.add_upload(file.filename or "", file.file)
        except uploads.UnsupportedFile as exc:
            return error_response(415, str(exc))
        except uploads.FileTooLarge as exc:
            return error_response(413, str(exc))
        except PgaskError as exc:  # the file could not be read as a document
            return error_response(422, str(exc))

    @v1.delete("/documents/{document_id}", response_model=DeletedDocument)
    def delete_document(document_id: int):
        """Delete a document and its chunks (and the file, for an upload)."""
        source = kb.delete_document(document_id)
        if source is None:
            raise HTTPException(404, f"no document with id {document_id}")
        return {"id": document_id, "source": source}

    @v1.get("/models")
    def models():
        """The OpenAI model list: the one model, "pgask"."""
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "pgask"}]}

    @v1.post("/chat/completions", responses={200: {"content": {"text/event-stream": {}}}})
    def chat_completions(body: ChatCompletionRequest):
        """OpenAI-compatible chat: the last user message is answered from the knowledge base, earlier turns make
        follow-ups standalone. The content ends with the numbered sources; `sources`, `standalone_question` and
        `mode` are extra fields of the completion (of the last chunk when streaming)."""
        if body.model != MODEL_ID:
            return JSONResponse({"error": {"message": f"unknown model {body.model!r}: this server serves {MODEL_ID!r}",
                                           "type": "invalid_request_error", "code": "model_not_found"}},
                                status_code=404)
        question, history = conversation(body.messages)
        if body.stream:
            include_usage = bool((body.stream_options or {}).get("include_usage"))
            events = started(kb.ask_events(question, history=history))
            return EventSourceResponse(completion_stream(events, include_usage), headers=SSE_HEADERS)
        answer = kb.ask(question, history=history)
        completion = {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": MODEL_ID,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": answer.answer + sources_footer(answer)}}],
            **completion_extras(answer),
        }
        if used := completion_usage(answer):
            completion["usage"] = used
        return completion

    app.include_router(v1)
    return app
