"""Embeddings from an OpenAI-compatible /v1/embeddings API: OpenAI, Ollama, vLLM, TEI, LiteLLM ...

Texts go out in requests bounded by an item count and a token budget, several at once within
the requests-per-minute and tokens-per-minute limits (pyrate-limiter token buckets, shared by
every embedder of the same API and model in the process). The openai SDK retries failures and
waits out 429s for as long as Retry-After says. The first request runs alone, so that a model
of the wrong dimension is refused after one request rather than a batch of them. Vectors are
normalised to unit length, as search assumes.
"""

from __future__ import annotations

import contextvars

import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from ..model_errors import api_errors
from ..errors import PgaskError
from ..usage import Call
from .counting import tokenizer_for

OPENAI_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class Provider:
    name: str
    base_url: str | None
    batch_size: int  # inputs per request
    batch_tokens: int  # tokens per request
    rpm: int | None  # requests per minute
    tpm: int | None  # tokens per minute


PROVIDERS = {
    # at most 2,048 inputs and 300,000 tokens a request; the limits are usage tier 1's
    "openai": Provider("openai", OPENAI_BASE_URL, 256, 300_000, 3_000, 1_000_000),
    "ollama": Provider("ollama", "http://localhost:11434/v1", 32, 16_384, None, None),
    # TEI's own defaults (--max-client-batch-size 32, --max-batch-tokens 16384); vLLM takes them too
    "openai-compatible": Provider("openai-compatible", None, 32, 16_384, None, None),
}


@dataclass(frozen=True)
class KnownModel:
    dim: int
    max_tokens: int  # longest input
    dimensions_param: bool = False  # accepts the `dimensions` parameter
    openai_tokenizer: bool = False  # counts in cl100k_base


MODELS = {
    "text-embedding-3-small": KnownModel(1536, 8191, dimensions_param=True, openai_tokenizer=True),
    "text-embedding-3-large": KnownModel(3072, 8191, dimensions_param=True, openai_tokenizer=True),
    "text-embedding-ada-002": KnownModel(1536, 8191, openai_tokenizer=True),
    "nomic-embed-text": KnownModel(768, 2048),  # Ollama's context length for it
    "mxbai-embed-large": KnownModel(1024, 512),
    "all-minilm": KnownModel(384, 256),
    "bge-m3": KnownModel(1024, 8192),
}
UNKNOWN_MAX_TOKENS = 512  # the input limit of most BERT-family models served by TEI and vLLM


def parse_model(spec: str) -> tuple[Provider, str]:
    """`openai:NAME`, `ollama:NAME` or a plain NAME (for PGASK_EMBED_BASE_URL) -> (provider, API model)."""
    prefix, _, name = spec.partition(":")
    if prefix in ("openai", "ollama") and name:
        return PROVIDERS[prefix], name
    return PROVIDERS["openai-compatible"], spec


def plan_batches(counts: Sequence[int], max_items: int, max_tokens: int) -> Iterator[tuple[int, int]]:
    """(start, end) ranges of consecutive texts with at most max_items texts and max_tokens tokens."""
    start, tokens = 0, 0
    for i, count in enumerate(counts):
        if i > start and (i - start >= max_items or tokens + count > max_tokens):
            yield start, i
            start, tokens = i, 0
        tokens += count
    if start < len(counts):
        yield start, len(counts)


_limiters: dict[tuple, object] = {}
_limiters_lock = threading.Lock()


def _per_minute(key: tuple, limit: int):
    """One token-bucket limiter per API, model and limit in this process."""
    from pyrate_limiter import Duration
    from pyrate_limiter.limiter_factory import create_token_bucket_limiter

    with _limiters_lock:
        if key not in _limiters:
            _limiters[key] = create_token_bucket_limiter(limit, Duration.MINUTE)
        return _limiters[key]


class RemoteEmbedder:
    """The Embedder protocol over an OpenAI-compatible embeddings API.

    `on_call` receives a usage.Call for every request answered (the knowledge base's ledger).
    """

    def __init__(
        self,
        spec: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        openai_api_key: str | None = None,
        dimensions: int | None = None,
        max_tokens: int | None = None,
        batch_size: int | None = None,
        batch_tokens: int | None = None,
        concurrency: int = 4,
        rpm: int | None = None,
        tpm: int | None = None,
        max_retries: int = 6,
        timeout: float = 60.0,
        on_call: Callable[[Call], object] | None = None,
    ):
        self.name = spec  # the identity recorded in the knowledge base
        provider, self.model = parse_model(spec)
        self.provider = provider.name
        self.base_url = base_url or provider.base_url
        if not self.base_url:
            raise PgaskError(f"embedding model {spec!r} is neither local nor openai:/ollama:, and "
                             "PGASK_EMBED_BASE_URL is not set: set it to your server's /v1 URL")
        known = MODELS.get(self.model.split(":")[0])
        if self.provider == "openai":
            self.api_key, self.key_variable = (api_key, "PGASK_EMBED_API_KEY") if api_key else (openai_api_key, "OPENAI_API_KEY")
        else:
            self.api_key, self.key_variable = api_key, "PGASK_EMBED_API_KEY"
        # `dimensions` is asked of models that take it; of others it is the size to expect
        self.dimensions = dimensions if known and known.dimensions_param else None
        self._dim = dimensions or (known.dim if known else None)
        self.max_tokens = max_tokens or (known.max_tokens if known else UNKNOWN_MAX_TOKENS)
        self.batch_size = batch_size or provider.batch_size
        self.batch_tokens = batch_tokens or provider.batch_tokens
        self.concurrency = max(1, concurrency)
        self.rpm = rpm or provider.rpm
        self.tpm = tpm or provider.tpm
        if self.tpm is not None:
            if self.tpm < self.max_tokens:
                raise PgaskError(f"PGASK_EMBED_TPM={self.tpm} is less than one input of {self.model} "
                                 f"({self.max_tokens} tokens): raise it")
            self.batch_tokens = min(self.batch_tokens, self.tpm)
        self.max_retries = max_retries
        self.timeout = timeout
        self.on_call = on_call
        self.tokenizer = tokenizer_for(provider.name == "openai" or bool(known and known.openai_tokenizer))
        self._checked = False  # a first answer has shown the vector size
        self._client = None
        self._lock = threading.Lock()

    # --- the Embedder protocol ---------------------------------------------------------------

    @property
    def dim(self) -> int:
        """The vector size; a model of unknown size is asked once, with a two-word probe."""
        if self._dim is None:
            self._embed(["dimension probe"], kind="embed_probe", on_call=self.on_call)
        return self._dim

    @dim.setter
    def dim(self, value: int) -> None:
        self._dim = value

    @property
    def known_dim(self) -> int | None:
        return self._dim

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return self.tokenizer.offsets(texts)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, kind="embed_documents", on_call=self.on_call)

    def embed_query(self, text: str) -> np.ndarray:
        return self._embed([text], kind="embed_query", on_call=self.on_call)[0]

    billed = True

    @property
    def requests(self) -> tuple[int, int]:
        return self.batch_size, self.concurrency

    def backend_info(self) -> None:
        return None

    def prepare(self) -> None:
        pass  # nothing to load

    def count_tokens(self, texts: Sequence[str]) -> int:
        return sum(self.tokenizer.counts(texts))

    def describe(self) -> dict:
        """Provider, model, URL and whether a key is set (masked), for status displays."""
        return {
            "provider": self.provider, "model": self.model, "base_url": self.base_url,
            "key_variable": self.key_variable,
            "api_key": self.api_key.masked() if hasattr(self.api_key, "masked") else ("***" if self.api_key else None),
            "tokenizer": self.tokenizer.name, "max_tokens": self.max_tokens,
            "batch_size": self.batch_size, "batch_tokens": self.batch_tokens, "concurrency": self.concurrency,
            "rpm": self.rpm, "tpm": self.tpm,
        }

    def _embed(self, texts: Sequence[str], *, kind: str, on_call: Callable[[Call], object] | None) -> np.ndarray:
        """Unit vectors for `texts`, in order; each answered request is reported to on_call."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        counts = self.tokenizer.counts(texts)
        longest = max(counts)
        if longest > self.max_tokens:
            raise PgaskError(
                f"a text of {longest} tokens is longer than {self.model} reads ({self.max_tokens}): "
                "shorten it, or lower PGASK_CHUNK_TOKENS and ingest again"
            )
        ranges = list(plan_batches(counts, self.batch_size, self.batch_tokens))
        results: dict[int, np.ndarray] = {}

        def request(i: int) -> None:
            start, end = ranges[i]
            results[i] = self._request(texts[start:end], sum(counts[start:end]), kind, on_call)

        todo = list(range(len(ranges)))
        if not self._checked:
            request(todo.pop(0))
        if len(todo) == 1 or (todo and self.concurrency == 1):
            for i in todo:
                request(i)
        elif todo:
            with ThreadPoolExecutor(min(self.concurrency, len(todo)), thread_name_prefix="pgask-embed") as pool:
                # each request in the caller's context, so that usage.Ledger.collect sees its call
                futures = [pool.submit(contextvars.copy_context().run, request, i) for i in todo]
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                failed = next((f for f in done if f.exception()), None)
                if failed is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise failed.exception()
        return np.vstack([results[i] for i in range(len(ranges))])

    # --- one request -------------------------------------------------------------------------

    @property
    def client(self):
        with self._lock:
            if self._client is None:
                if not self.api_key and self.base_url == OPENAI_BASE_URL:
                    raise PgaskError(f"OPENAI_API_KEY is not set: export it to embed with {self.name}")
                from openai import OpenAI

                # servers without keys still need one for the SDK; it is never a real key
                self._client = OpenAI(base_url=self.base_url, api_key=self.api_key or "not-needed",
                                      max_retries=self.max_retries, timeout=self.timeout)
            return self._client

    def _wait_for_limits(self, tokens: int) -> None:
        if self.rpm:
            _per_minute((self.base_url, self.model, "requests", self.rpm), self.rpm).try_acquire("requests")
        if self.tpm:
            _per_minute((self.base_url, self.model, "tokens", self.tpm), self.tpm).try_acquire("tokens", weight=tokens)

    def _request(self, texts: list[str], tokens: int, kind: str, on_call) -> np.ndarray:
        client = self.client
        self._wait_for_limits(tokens)
        extra = {"dimensions": self.dimensions} if self.dimensions else {}
        started = time.perf_counter()
        with api_errors("embeddings", self.base_url, model=self.model, key_variable=self.key_variable,
                        prefix="PGASK_EMBED", timeout=self.timeout, retries=self.max_retries):
            response = client.embeddings.create(model=self.model, input=texts, **extra)
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        reported = getattr(response.usage, "prompt_tokens", None) if response.usage else None
        if on_call is not None:
            # recorded before any check: a request answered is a request paid for
            on_call(Call(kind=kind, provider=self.provider, model=self.model,
                         tokens_in=tokens if reported is None else int(reported), latency_ms=latency_ms))
        data = sorted(response.data, key=lambda item: item.index)
        if len(data) != len(texts):
            raise PgaskError(f"the embeddings API at {self.base_url} answered {len(data)} vectors "
                             f"for {len(texts)} texts: it is not OpenAI-compatible")
        vectors = np.asarray([item.embedding for item in data], dtype=np.float32)
        self._check_dim(vectors.shape[1])
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if not norms.all():
            raise PgaskError(f"the embeddings API at {self.base_url} answered a zero vector for {self.model}")
        return vectors / norms

    def _check_dim(self, got: int) -> None:
        with self._lock:
            if self._dim is None:
                self._dim = got
            self._checked = True
            expected = self._dim
        if got != expected:
            raise PgaskError(
                f"the embeddings API at {self.base_url} answered {got}-dimensional vectors for {self.model}, "
                f"where {expected} were expected; nothing was stored: check PGASK_EMBED_MODEL "
                "and PGASK_EMBED_DIMENSIONS"
            )
