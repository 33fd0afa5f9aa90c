"""Server-Sent Events in tests: pytest-httpserver speaking the OpenAI chat completions protocol, and a reader."""

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


def sse_events(text: str) -> list[tuple[str | None, str]]:
    """(event name or None, data) of each event in a text/event-stream body; comments skipped."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        events.append((fields.get("event"), fields.get("data")))
    return events
