"""Embedders turn text into vectors. Every backend (local model, remote API) fits one protocol."""

from __future__ import annotations

import threading
from typing import Protocol, Sequence

import numpy as np


class Embedder(Protocol):
    name: str  # stable model identity recorded in pgask.settings, e.g. "sentence-transformers/all-MiniLM-L6-v2"
    dim: int  # vector dimension
    max_tokens: int  # longest input the model reads, in its own tokens, special tokens excluded

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character (start, end) of each model token of each text, special tokens excluded."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """Unit-length float32 vector for a search query."""
        ...


_loaded: dict[tuple, Embedder] = {}
_lock = threading.Lock()

REMOTE_PREFIXES = ("openai:", "ollama:")


def is_remote(model: str, base_url: str | None = None) -> bool:
    """Whether a model name (with PGASK_EMBED_BASE_URL) selects an embeddings API rather than a local model."""
    return bool(base_url) or model.startswith(REMOTE_PREFIXES)


def get_embedder(model: str, *, backend: str = "auto", base_url: str | None = None, api_key=None,
                 **remote_options) -> Embedder:
    """The embedder a model name selects: local sentence-transformers unless a remote provider is named.

    `openai:NAME`, `ollama:NAME`, or any name with a base_url, is an OpenAI-compatible embeddings
    API (embed/remote.py; `remote_options` go to RemoteEmbedder). A local model is loaded once per
    configuration and process, however many knowledge bases, requests or threads use it.
    """
    if is_remote(model, base_url):
        from .remote import RemoteEmbedder

        return RemoteEmbedder(model, base_url=base_url, api_key=api_key, **remote_options)
    key = (model, backend, base_url)
    with _lock:
        if key not in _loaded:
            from .local import LocalEmbedder

            _loaded[key] = LocalEmbedder(model)
        return _loaded[key]
