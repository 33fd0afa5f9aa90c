"""The HTTP API's request and response bodies, and the limits they enforce."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..config import MAX_K
from ..search import Hit

MAX_BODY_BYTES = 1_000_000  # JSON requests; uploads have PGASK_MAX_FILE_MB
MAX_QUESTION_CHARS = 4_000
MAX_MESSAGE_CHARS = 32_000  # one earlier turn of a conversation
MAX_MESSAGES = 200
MAX_PAGE = 1_000
MODEL_ID = "pgask"  # the one model /v1/chat/completions serves


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


class DeletedDocument(BaseModel):
    id: int
    source: str
    deleted: bool = True


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
