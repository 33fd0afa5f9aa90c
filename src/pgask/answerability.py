"""Whether the passages found answer the question at all, before any answer is composed.

First, a question that names something written as code (gp_vmem_protect_limit,
--leaf-partition-data, GreenplumCluster, DISTSTYLE) that no document mentions is one the
documents cannot answer, however close its passages sound (`code_terms` here, the search in
SQL: unmentioned_terms in search.sql). Then, calibrated on bench/gpdb's dev questions (README,
Honest "not in the documents"): where the passages were re-ranked, the cross-encoder's
probability that the best of them answers the question (it reads question and passage
together, so it notices a passage about the same words that does not answer); else the cosine
similarity of the closest passage (a question about something else entirely finds nothing near
it). Lexical signals were measured too, the share of the question's rare terms that the
passages contain and whether vector and keyword search agree; they did not carry from the dev
questions to the test ones, so they are not used.
"""

from __future__ import annotations

import re
from typing import Sequence

from .search import Hit

# a name written as code: a --flag, snake_case (with a file suffix: pg_hba.conf), CamelCase words
# (GreenplumCluster), or a word of 4 capital letters or more (SQL keywords, product names). Not
# capitals with digits or a lone capital inside (IFIT1, UreH, ComYMV): gene and protein symbols,
# which SciFact's claims name in other spellings than its abstracts do.
CODE_TERM = re.compile(
    r"(?<![A-Za-z0-9_-])("
    r"--[a-z][a-z0-9-]+"
    r"|[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+(?:\.[A-Za-z0-9]+)*"
    r"|[A-Z][a-z]+(?:[A-Z][a-z]+)+"
    r"|[A-Z]{4,}"
    r")(?![A-Za-z0-9_])")
# quoted text is the user's own values (a user or host in a pasted error message), not the docs';
# an apostrophe inside a word (what's, don't) opens no quote
QUOTED = re.compile(r"\"[^\"]*\"|(?<![A-Za-z])'[^']*'(?![A-Za-z])")


def code_terms(question: str) -> list[str]:
    """The names written as code in `question`, once each, quoted values left out:
    "what does gpexpand --leaf-partition-data do" -> ["--leaf-partition-data"]."""
    return list(dict.fromkeys(CODE_TERM.findall(QUOTED.sub(" ", question))))

# below this re-ranker probability, no passage answers: chosen on the dev split (4 of 8 questions
# the docs do not answer refused, 2 of 74 answerable ones); on the test split it refused 1 of 74
# answerable questions and caught no more unanswerable ones than the cosine alone
MIN_RELEVANCE = 0.04


def answerable(hits: Sequence[Hit], *, threshold: float, min_relevance: float = MIN_RELEVANCE) -> bool:
    """True when the re-ranker gives some passage at least `min_relevance`; where the passages were
    not re-ranked, when some passage is at least `threshold` similar to the question.

    The re-ranker's word replaces the cosine's rather than adding to it: on bench/gpdb both
    together refused exactly the questions the re-ranker alone refused, and the cosine alone
    turns away answerable questions phrased unlike their passage ("how do I stop the embedded
    server": cosine 0.24 to the passage about `pgask stop`, which the re-ranker scores 0.998)."""
    relevance = [h.relevance for h in hits if h.relevance is not None]
    if relevance:
        return max(relevance) >= min_relevance
    return any(h.similarity is not None and h.similarity >= threshold for h in hits)
