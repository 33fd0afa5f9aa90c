"""pgask: cited answers from your documents, stored and searched in PostgreSQL + pgvector."""

from .errors import PgaskError

__all__ = ["KnowledgeBase", "PgaskError"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # KnowledgeBase is imported on first use, so that `pgask --help`, `--version` and `stop` (and
    # any `import pgask.something`) do not pay for psycopg, numpy and the rest of the facade
    if name == "KnowledgeBase":
        from .kb import KnowledgeBase

        return KnowledgeBase
    raise AttributeError(f"module 'pgask' has no attribute {name!r}")
