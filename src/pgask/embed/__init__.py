"""Embedders turn text into vectors. Every backend (local model, remote API) fits one protocol."""

from __future__ import annotations

import threading
from pathlib import Path
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


def get_embedder(model: str, *, backend: str = "auto", base_url: str | None = None, api_key=None,
                 cache_dir: Path | None = None) -> Embedder:
    """The embedder a model name selects: local sentence-transformers unless a remote provider is named.

    One instance per configuration and process, so the model is loaded once however many
    knowledge bases, requests or threads use it. `cache_dir` keeps local models' ONNX exports
    and the backend auto-selection's measurements.
    """
    key = (model, backend, base_url, cache_dir)
    with _lock:
        if key not in _loaded:
            from .local import LocalEmbedder

            _loaded[key] = LocalEmbedder(model, backend=backend, cache_dir=cache_dir)
        return _loaded[key]
