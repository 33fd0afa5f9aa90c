"""pgask: cited answers from your documents, stored and searched in PostgreSQL + pgvector."""

from .errors import PgaskError
from .kb import KnowledgeBase

__all__ = ["KnowledgeBase", "PgaskError"]
__version__ = "0.1.0"
