"""Helpers that make pytest-httpserver speak the OpenAI chat completions protocol (SSE streaming)."""

from __future__ import annotations

import json

from werkzeug import Response


def sse_chat(tokens: list[str], *, model: str = "test-model", usage: tuple[int, int] = (120, 30)) -> Response:
    """A streamed chat completion: one chunk per token, then a usage chunk, then [DONE]."""
    events = []
    for i, token in enumerate(tokens):
        events.append({
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [{"index": 0, "delta": ({"role": "assistant"} if i == 0 else {}) | {"content": token},
                         "finish_reason": None}],
        })
    events.append({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": model,
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [],
                   "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}})
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return Response(body, status=200, headers={"Content-Type": "text/event-stream"})
