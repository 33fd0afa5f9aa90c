"""Whether the passages found answer the question at all, before any answer is composed."""

from __future__ import annotations

from typing import Sequence

from .search import Hit


def answerable(question: str, hits: Sequence[Hit], *, threshold: float) -> bool:
    """True when some passage is at least `threshold` similar to the question."""
    return any(h.similarity is not None and h.similarity >= threshold for h in hits)
