"""Settings from the environment and an optional pgask.toml. Nothing else in pgask reads os.environ."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


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
    schema: str = "pgask"
    embed_model: str = DEFAULT_MODEL
    embed_backend: str = "auto"
    embed_base_url: str | None = None
    llm_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    openai_api_key: Secret | None = None
    api_token: Secret | None = None
    text_search_config: str = "english"
    top_k: int = 5
    # Cosine similarity below which a passage is treated as unrelated to the question.
    # Calibrated on all-MiniLM-L6-v2: unrelated questions score < 0.3 against technical docs.
    threshold: float = 0.3
    chunk_tokens: int = 200
    overlap_tokens: int = 32
    max_file_mb: int = 100
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
    "PGASK_SCHEMA": "schema",
    "PGASK_EMBED_MODEL": "embed_model",
    "PGASK_EMBED_BACKEND": "embed_backend",
    "PGASK_EMBED_BASE_URL": "embed_base_url",
    "PGASK_LLM_BASE_URL": "llm_base_url",
    "PGASK_LLM_MODEL": "llm_model",
    "OPENAI_API_KEY": "openai_api_key",
    "PGASK_API_TOKEN": "api_token",
    "PGASK_TEXT_SEARCH_CONFIG": "text_search_config",
    "PGASK_TOP_K": "top_k",
    "PGASK_THRESHOLD": "threshold",
    "PGASK_CHUNK_TOKENS": "chunk_tokens",
    "PGASK_OVERLAP_TOKENS": "overlap_tokens",
    "PGASK_MAX_FILE_MB": "max_file_mb",
    "PGASK_POOL_SIZE": "pool_size",
    "PGASK_HNSW_EF_SEARCH": "hnsw_ef_search",
    "PGASK_IVFFLAT_PROBES": "ivfflat_probes",
    "PGASK_INDEX_MEMORY_MB": "index_memory_mb",
    "PGASK_INDEX_WORKERS": "index_workers",
}


def _coerce(name: str, value: Any) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if value in ("", None):
        return None
    if name == "home":
        return Path(value).expanduser()
    if name in ("openai_api_key", "api_token"):
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
            if key in known:
                values[key] = _coerce(key, value)
    for var, name in ENV.items():
        if environ.get(var):
            values[name] = _coerce(name, environ[var])
    return Settings(**{k: v for k, v in values.items() if v is not None})


def environ_get(name: str, default: str | None = None) -> str | None:
    """The one door to the process environment for other modules (provider-specific keys)."""
    return os.environ.get(name, default)
