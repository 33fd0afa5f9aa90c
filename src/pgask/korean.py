"""Korean words for keyword search: the morphemes of Hangul text, from kiwipiepy (`pgask[korean]`).

Korean writes particles and endings onto its words ("테이블을", "테이블은", "테이블의" are one
noun), and no PostgreSQL text search configuration takes them apart, so a question and a passage
about the same table share no lexeme. Each chunk's Korean morphemes are stored beside it
(chunks.keywords, part of its tsvector) and a Korean question's are added to its words before
the BM25 search, so they meet on "테이블". Nothing here runs for text without Hangul, or when
kiwipiepy is not installed (then Korean is matched word for word, as before).
"""

from __future__ import annotations

import importlib.util
import re
import threading
from functools import cache

HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
# nouns, numerals, roots and the stems of verbs and adjectives: the morphemes that carry meaning
# (particles, endings, suffixes and punctuation are left out); Latin words are already lexemes
CONTENT_TAGS = ("NNG", "NNP", "NR", "NP", "XR", "VV", "VA", "SH", "MAG")

_kiwi = None
_lock = threading.Lock()


@cache  # asked for every chunk with Hangul: look for the package once a process
def available() -> bool:
    return importlib.util.find_spec("kiwipiepy") is not None


def has_hangul(text: str) -> bool:
    return HANGUL.search(text) is not None


def _analyzer():
    global _kiwi
    with _lock:
        if _kiwi is None:
            from kiwipiepy import Kiwi

            _kiwi = Kiwi()  # loads its model from the kiwipiepy_model package: about 2 s, once a process
        return _kiwi


def keywords(text: str) -> str:
    """The Korean content morphemes of `text`, separated by spaces; '' without Hangul or kiwipiepy."""
    if not has_hangul(text) or not available():
        return ""
    kiwi = _analyzer()
    with _lock:  # one analysis at a time: the ingest's writer and a search may share the analyzer
        tokens = kiwi.tokenize(text)
    return " ".join(t.form for t in tokens if t.tag.split("-")[0] in CONTENT_TAGS and has_hangul(t.form))


def query_text(question: str) -> str:
    """The question with its Korean morphemes added, as keyword search reads it."""
    extra = keywords(question)
    return f"{question} {extra}" if extra else question
