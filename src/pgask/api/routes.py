"""The routes, each a module-level function over the app's KnowledgeBase (`app.state.kb`).

Every route that touches the knowledge base is a plain `def`, so FastAPI runs it on its thread
pool: embedding and database work never block the event loop.
"""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from fastapi.sse import EventSourceResponse
from starlette.exceptions import HTTPException

from .. import __version__
from ..errors import PgaskError
from ..ingest import uploads
from ..kb import KnowledgeBase
from .errors import error_response, install_error_handlers
from .middleware import BearerAuth, BodyLimit, mount_docs
from ..documents import DocumentPage, UploadedDocument
from ..status import Health
from .models import (ERRORS, MAX_BODY_BYTES, MAX_PAGE, MODEL_ID, AskRequest, AskResponse, ChatCompletionRequest,
                     DeletedDocument, Error, SearchRequest, SearchResponse)
from .wire import (SSE_HEADERS, ask_stream, completion_extras, completion_stream, completion_usage, conversation,
                   sources_footer, started)


def knowledge_base(request: Request) -> KnowledgeBase:
    """The knowledge base the app serves (a dependency: no parameter in the OpenAPI description)."""
    return request.app.state.kb


KB = Depends(knowledge_base)
# the scheme, for the OpenAPI description; BearerAuth enforces it
bearer = HTTPBearer(auto_error=False, description="The value of PGASK_API_TOKEN.")
public = APIRouter()
v1 = APIRouter(prefix="/v1", dependencies=[Depends(bearer)], responses=ERRORS)


def create_app(kb: KnowledgeBase) -> FastAPI:
    """The API over `kb`; every route but PUBLIC_PATHS needs the bearer token when PGASK_API_TOKEN is set."""
    settings = kb.settings
    app = FastAPI(
        title="pgask", version=__version__,
        description="Cited answers from your documents, stored and searched in PostgreSQL + pgvector.",
        docs_url=None, redoc_url=None,  # /docs is mounted below with local assets; ReDoc has only a CDN build
    )
    app.state.kb = kb
    mount_docs(app)
    upload_bytes = settings.max_file_mb * 1_000_000 + 100_000  # the file and its multipart wrapping
    app.add_middleware(BodyLimit, default=MAX_BODY_BYTES, by_path={"/v1/documents": upload_bytes})
    if settings.api_token:  # added last, so it runs first
        app.add_middleware(BearerAuth, token=settings.api_token)
    install_error_handlers(app)
    app.include_router(public)
    app.include_router(v1)
    return app


@public.get("/healthz", response_model=Health, responses={503: {"model": Error}})
def healthz(kb: KnowledgeBase = KB):
    """Database reachable and embedding model loaded. Needs no token."""
    try:
        return kb.health()
    except Exception as exc:  # noqa: BLE001 - unhealthy whatever the cause; say which
        return error_response(503, f"not ready: {exc}", "unavailable")


@v1.post("/search", response_model=SearchResponse)
def search(body: SearchRequest, kb: KnowledgeBase = KB):
    """The passages closest to `query`, best first."""
    hits = kb.search(body.query, k=body.k, threshold=body.threshold, metric=body.metric, **body.selection())
    return {"query": body.query, "results": [h.as_dict() for h in hits]}


@v1.post("/ask", response_model=AskResponse, responses={200: {"content": {"text/event-stream": {}}}})
def ask(body: AskRequest, kb: KnowledgeBase = KB):
    """A cited answer. With `stream: true`, Server-Sent Events: `question` (the standalone question),
    `token`... (the answer as written), `sources`, then `done`; or `error`."""
    options = {"history": [t.model_dump() for t in body.history], "k": body.k, "threshold": body.threshold,
               **body.selection()}
    if not body.stream:
        return kb.ask(body.question, **options).as_dict()
    # the first event is awaited before the response starts, so that a question that cannot be
    # answered at all (an empty knowledge base, say) still gets a proper HTTP status
    events = started(kb.ask_events(body.question, **options))
    return EventSourceResponse(ask_stream(events, body.question), headers=SSE_HEADERS)


@v1.get("/documents", response_model=DocumentPage)
def list_documents(limit: int = Query(50, ge=1, le=MAX_PAGE), offset: int = Query(0, ge=0),
                   kb: KnowledgeBase = KB):
    """Stored documents ordered by source, one page at a time."""
    return kb.list_documents(limit=limit, offset=offset)


@v1.post("/documents", response_model=UploadedDocument, status_code=201)
def upload(file: UploadFile = File(..., description="A .md .txt .rst .html or .pdf file."), kb: KnowledgeBase = KB):
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
def delete_document(document_id: int, kb: KnowledgeBase = KB):
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
def chat_completions(body: ChatCompletionRequest, kb: KnowledgeBase = KB):
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
