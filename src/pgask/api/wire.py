"""The wire formats of answers: pgask's Server-Sent Events and OpenAI's chat completions."""

from __future__ import annotations

import json
import time
import uuid
from itertools import chain
from typing import Any, Iterator

from fastapi.sse import format_sse_event

from ..answer import Answer
from ..errors import PgaskError
from .errors import stream_error
from .models import MAX_QUESTION_CHARS, MODEL_ID, ChatMessage

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def started(events: Iterator[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    """The events with the first one already produced: its error becomes the HTTP response."""
    first = next(events)
    return chain([first], events)


def sse(event: str | None, data: Any) -> bytes:
    return format_sse_event(event=event, data_str=data if isinstance(data, str) else json.dumps(data, default=str))


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
