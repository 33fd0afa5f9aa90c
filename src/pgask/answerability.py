"""Whether the passages found answer the question at all, before any answer is composed.

Two signals, calibrated on bench/gpdb's dev questions (README, Honest "not in the documents"):
the cosine similarity of the closest passage (a question about something else entirely finds
nothing near it), and, where the passages were re-ranked, the cross-encoder's probability that
the best of them answers the question (it reads question and passage together, so it notices a
passage about the same words that does not answer). Lexical signals were measured too, the share
of the question's rare terms that the passages contain and whether vector and keyword search
agree; they did not carry from the dev questions to the test ones, so they are not used.
"""

from __future__ import annotations

from typing import Sequence

from .search import Hit

# below this re-ranker probability, no passage answers: chosen on the dev split (4 of 8 questions
# the docs do not answer refused, 2 of 74 answerable ones); on the test split it refused 1 of 74
# answerable questions and caught no more unanswerable ones than the cosine alone
MIN_RELEVANCE = 0.04


def answerable(question: str, hits: Sequence[Hit], *, threshold: float, min_relevance: float = MIN_RELEVANCE) -> bool:
    """True when some passage is at least `threshold` similar to the question and, if the passages
    were re-ranked, the re-ranker gives some passage at least `min_relevance`."""
    if not any(h.similarity is not None and h.similarity >= threshold for h in hits):
        return False
    relevance = [h.relevance for h in hits if h.relevance is not None]
    return not relevance or max(relevance) >= min_relevance
