"""Embedders turn text into vectors. Every backend (local model, remote API) fits one protocol."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence

if TYPE_CHECKING:  # numpy loads on first use: commands that embed nothing (`pgask status`) never import it
    import numpy as np


class Embedder(Protocol):
    """What every caller of an embedder uses; nothing outside embed/ asks which kind it has."""

    name: str  # stable model identity recorded in pgask.settings, e.g. "sentence-transformers/all-MiniLM-L6-v2"
    dim: int  # vector dimension (a remote model of unknown size is asked once)
    max_tokens: int  # longest input the model reads, in its own tokens, special tokens excluded
    known_dim: int | None  # the dimension known without asking a model API (None: not yet known)
    billed: bool  # an embeddings API: its calls cost money, are rate limited and go in the usage ledger
    requests: tuple[int, int] | None  # an API's (inputs per request, requests at once); None for a local model

    def describe(self) -> dict:
        """Provider and model for `status`: {"provider": "local", "model": ...}, or an API's URL, key and limits."""
        ...

    def backend_info(self) -> dict | None:
        """A local model's backend, asked for and in use (`status`); None for an API."""
        ...

    def prepare(self) -> None:
        """Load what embedding needs now (a local model), so the first batch does not wait; an API: nothing."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> int:
        """The tokens an API bills for `texts` (its budget estimate); 0 for a model that is not billed."""
        ...

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character (start, end) of each model token of each text, special tokens excluded."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """Unit-length float32 vector for a search query."""
        ...


class OnThisMachine:
    """The part of the protocol every local model shares: free, unlimited, known in size."""

    billed = False
    requests = None
    name: str
    dim: int

    @property
    def known_dim(self) -> int | None:
        return self.dim

    def describe(self) -> dict:
        return {"provider": "local", "model": self.name}

    def count_tokens(self, texts: Sequence[str]) -> int:
        return 0  # nothing is billed


_loaded: dict[tuple, Embedder] = {}
_lock = threading.Lock()

REMOTE_PREFIXES = ("openai:", "ollama:")


def is_remote(model: str, base_url: str | None = None) -> bool:
    """Whether a model name (with PGASK_EMBED_BASE_URL) selects an embeddings API rather than a local model."""
    return bool(base_url) or model.startswith(REMOTE_PREFIXES)


def get_embedder(model: str, *, backend: str = "auto", base_url: str | None = None, api_key=None,
                 cache_dir: Path | None = None, **remote_options) -> Embedder:
    """The embedder a model name selects: local sentence-transformers unless a remote provider is named.

    `openai:NAME`, `ollama:NAME`, or any name with a base_url, is an OpenAI-compatible embeddings
    API (embed/remote.py; `remote_options` go to RemoteEmbedder). A local model is loaded once per
    configuration and process, however many knowledge bases, requests or threads use it; `cache_dir`
    keeps its ONNX exports and the backend auto-selection's measurements.
    """
    if is_remote(model, base_url):
        from .remote import RemoteEmbedder

        return RemoteEmbedder(model, base_url=base_url, api_key=api_key, **remote_options)
    from .packaged import PackagedEmbedder, canonical

    packaged = canonical(model)
    key = (packaged, None, None, None) if packaged else (model, backend, base_url, cache_dir)
    with _lock:
        if key not in _loaded:
            if packaged:  # its ONNX file ships in a package: one way to run it, whatever the backend says
                _loaded[key] = PackagedEmbedder(packaged)
            else:
                from .local import LocalEmbedder

                _loaded[key] = LocalEmbedder(model, backend=backend, cache_dir=cache_dir)
        return _loaded[key]


def configured_embedder(settings, *, model: str | None = None, on_call=None) -> Embedder:
    """The embedder that `settings` (a config.Settings) configure; `model` names another one (the
    model a knowledge base was built with). A remote embedder hands each answered request to
    `on_call` (a ledger), and is sent OPENAI_API_KEY only when it is an `openai:` model."""
    s = settings
    name = model or s.embed_model
    options = dict(
        openai_api_key=s.openai_api_key, dimensions=s.embed_dimensions, max_tokens=s.embed_max_tokens,
        batch_size=s.embed_batch_size, batch_tokens=s.embed_batch_tokens, concurrency=s.embed_concurrency,
        rpm=s.embed_rpm, tpm=s.embed_tpm, max_retries=s.embed_max_retries, timeout=s.embed_timeout,
        on_call=on_call,
    ) if is_remote(name, s.embed_base_url) else {"cache_dir": s.home / "models"}
    return get_embedder(name, backend=s.embed_backend, base_url=s.embed_base_url, api_key=s.embed_api_key, **options)
