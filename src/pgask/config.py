"""Settings from the environment and an optional pgask.toml. Nothing else in pgask reads os.environ."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from .errors import PgaskError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# the most passages one search or answer returns, on the command line and over HTTP alike
MAX_K = 100


class Secret(str):
    """A string that never shows itself in repr, logs or tracebacks."""

    def __repr__(self) -> str:
        return "Secret('***')"

    def masked(self) -> str:
        return f"{self[:3]}…{self[-2:]}" if len(self) > 8 else "***"


def _default_home() -> Path:
    import warnings

    import platformdirs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Path(platformdirs.user_data_dir("pgask", appauthor=False))


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=_default_home)
    database_url: str | None = None  # None: the embedded Postgres under home
    source_url: str | None = None  # database of table sources (pgask ingest --table); None: database_url
    schema: str = "pgask"
    embed_model: str = DEFAULT_MODEL
    embed_backend: str = "auto"
    embed_base_url: str | None = None
    embed_api_key: Secret | None = None  # a key for the embeddings server; OPENAI_API_KEY serves openai:
    embed_dimensions: int | None = None  # vector size: asked of text-embedding-3 models, expected of others
    embed_max_tokens: int | None = None  # longest input of a remote model; known models need none
    embed_batch_size: int | None = None  # inputs per request (provider default when unset)
    embed_batch_tokens: int | None = None  # tokens per request (provider default when unset)
    embed_concurrency: int = 4  # requests in flight at once
    embed_rpm: int | None = None  # requests per minute (provider default when unset)
    embed_tpm: int | None = None  # tokens per minute (provider default when unset)
    embed_max_retries: int = 6  # retries of a failed request; Retry-After is honoured
    embed_timeout: float = 60.0  # seconds to wait for one answer
    max_cost_usd: float | None = None  # an ingest stops before spending more than this
    prices_file: Path | None = None  # prices that extend or replace the packaged table
    llm_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_max_retries: int = 3  # retries of a failed request (429, 5xx, timeouts); Retry-After is honoured
    llm_timeout: float = 120.0  # seconds to wait for the answer to start, and between its parts
    openai_api_key: Secret | None = None
    api_token: Secret | None = None
    text_search_config: str = "english"
    search_mode: str = "hybrid"  # vector | keyword | hybrid: hybrid measured best (README, Retrieval quality)
    top_k: int = 5
    # Cross-encoder re-ranking of the best `rerank_depth` passages (rerank.py): auto (when its
    # package is installed), on (required), off.
    rerank: str = "auto"
    rerank_depth: int = 20
    # Cosine similarity below which a passage is treated as unrelated to the question.
    # Calibrated on all-MiniLM-L6-v2: unrelated questions score < 0.3 against technical docs.
    threshold: float = 0.3
    chunk_tokens: int = 200
    overlap_tokens: int = 32
    max_file_mb: int = 100  # larger files are not read at all
    max_text_mb: int = 20  # millions of characters of text per document
    pool_size: int = 8
    # ANN search: candidates HNSW keeps while searching, and IVFFlat lists probed. Unset: what
    # `pgask index --ef-search/--probes` recorded in the knowledge base, else pgvector-style defaults.
    hnsw_ef_search: int | None = None
    ivfflat_probes: int | None = None
    # ANN index builds: memory (maintenance_work_mem, MB; unset: sized to the index) and
    # parallel workers (unset: one per CPU core beyond the first for the embedded server).
    index_memory_mb: int | None = None
    index_workers: int | None = None

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_base_url or self.openai_api_key)

    def with_overrides(self, **overrides: Any) -> "Settings":
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


# environment variable -> settings field
ENV = {
    "PGASK_HOME": "home",
    "PGASK_DATABASE_URL": "database_url",
    "PGASK_SOURCE_URL": "source_url",
    "PGASK_SCHEMA": "schema",
    "PGASK_EMBED_MODEL": "embed_model",
    "PGASK_EMBED_BACKEND": "embed_backend",
    "PGASK_EMBED_BASE_URL": "embed_base_url",
    "PGASK_EMBED_API_KEY": "embed_api_key",
    "PGASK_EMBED_DIMENSIONS": "embed_dimensions",
    "PGASK_EMBED_MAX_TOKENS": "embed_max_tokens",
    "PGASK_EMBED_BATCH_SIZE": "embed_batch_size",
    "PGASK_EMBED_BATCH_TOKENS": "embed_batch_tokens",
    "PGASK_EMBED_CONCURRENCY": "embed_concurrency",
    "PGASK_EMBED_RPM": "embed_rpm",
    "PGASK_EMBED_TPM": "embed_tpm",
    "PGASK_EMBED_MAX_RETRIES": "embed_max_retries",
    "PGASK_EMBED_TIMEOUT": "embed_timeout",
    "PGASK_MAX_COST_USD": "max_cost_usd",
    "PGASK_PRICES_FILE": "prices_file",
    "PGASK_LLM_BASE_URL": "llm_base_url",
    "PGASK_LLM_MODEL": "llm_model",
    "PGASK_LLM_MAX_RETRIES": "llm_max_retries",
    "PGASK_LLM_TIMEOUT": "llm_timeout",
    "OPENAI_API_KEY": "openai_api_key",
    "PGASK_API_TOKEN": "api_token",
    "PGASK_TEXT_SEARCH_CONFIG": "text_search_config",
    "PGASK_SEARCH_MODE": "search_mode",
    "PGASK_TOP_K": "top_k",
    "PGASK_RERANK": "rerank",
    "PGASK_RERANK_DEPTH": "rerank_depth",
    "PGASK_THRESHOLD": "threshold",
    "PGASK_CHUNK_TOKENS": "chunk_tokens",
    "PGASK_OVERLAP_TOKENS": "overlap_tokens",
    "PGASK_MAX_FILE_MB": "max_file_mb",
    "PGASK_MAX_TEXT_MB": "max_text_mb",
    "PGASK_POOL_SIZE": "pool_size",
    "PGASK_HNSW_EF_SEARCH": "hnsw_ef_search",
    "PGASK_IVFFLAT_PROBES": "ivfflat_probes",
    "PGASK_INDEX_MEMORY_MB": "index_memory_mb",
    "PGASK_INDEX_WORKERS": "index_workers",
}


# Keys come from the environment only: a file is too easily committed or shared.
SECRETS = ("openai_api_key", "embed_api_key", "api_token")


def _coerce(name: str, value: Any) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if value in ("", None):
        return None
    if name in ("home", "prices_file"):
        return Path(value).expanduser()
    if name in SECRETS:
        return Secret(value)
    if "int" in str(kind):
        return int(value)
    if "float" in str(kind):
        return float(value)
    return str(value)


def load_settings(environ: Mapping[str, str] | None = None, config_file: Path | None = None) -> Settings:
    """Defaults < pgask.toml (PGASK_CONFIG or ./pgask.toml) < environment."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or Path(environ.get("PGASK_CONFIG", "pgask.toml"))
    if path.is_file():
        with path.open("rb") as fh:
            table = tomllib.load(fh)
        known = {f.name for f in fields(Settings)}
        for key, value in table.items():
            if key in SECRETS:
                variable = next(var for var, name in ENV.items() if name == key)
                raise PgaskError(f"{path} sets {key}: keys are read from the environment only; "
                                 f"remove it from the file and set {variable} instead")
            if key in known:
                values[key] = _coerce(key, value)
    for var, name in ENV.items():
        if environ.get(var):
            try:
                values[name] = _coerce(name, environ[var])
            except ValueError:
                raise PgaskError(f"{var}={environ[var]!r} is not a number: set it to one, or unset it") from None
    return Settings(**{k: v for k, v in values.items() if v is not None})


def environ_get(name: str, default: str | None = None) -> str | None:
    """The one door to the process environment for other modules (provider-specific keys)."""
    return os.environ.get(name, default)
