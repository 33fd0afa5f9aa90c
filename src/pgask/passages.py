"""Which retrieved passages an answer may be written from: each passage once, and no pages that
only point elsewhere (a table of contents, a list of links), which say nothing a question asks."""

from __future__ import annotations

import re
from typing import Sequence, TypeVar

H = TypeVar("H")  # a search.Hit (anything with .content)

SENTENCE_END = re.compile(r"[.!?:;)]\s*$")
LONE_MARK = re.compile(r"^([ \t]*(?:[-*+•]|\d+[.)]))[ \t]*\n(?:[ \t]*\n)*[ \t]*", re.M)
LIST_MARK = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")


def is_navigation(text: str) -> bool:
    """True for a passage that is only a list of titles: at least 5 lines, at least 80% of them
    short list items or "Parent topic:" links (6 words or fewer, no sentence ending), and at most
    one line of 10 words or more. A list whose items say something is kept."""
    text = LONE_MARK.sub(r"\1 ", text)  # a loose list's item: its marker on a line of its own
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if len(lines) < 5:
        return False
    titles = 0
    long_lines = 0
    for line in lines:
        words = LIST_MARK.sub("", line).split()
        if len(words) >= 10:
            long_lines += 1
        if line.lower().startswith(("parent topic:", "next topic:", "previous topic:")):
            titles += 1
        elif LIST_MARK.match(line) and len(words) <= 6 and not SENTENCE_END.search(line):
            titles += 1
    return titles >= 0.8 * len(lines) and long_lines <= 1


def _key(text: str) -> str:
    return " ".join(text.casefold().split())


def distinct(hits: Sequence[H]) -> list[H]:
    """The hits without repeats: a passage whose text (case and spacing aside) equals, or lies
    within, a better-ranked one's is dropped (the same section stored in two files, say)."""
    kept: list[H] = []
    keys: list[str] = []
    for hit in hits:
        key = _key(hit.content)
        if any(key == seen or key in seen for seen in keys):
            continue
        kept.append(hit)
        keys.append(key)
    return kept


def for_answer(hits: Sequence[H]) -> list[H]:
    """The passages an answer is written from and cites: distinct, navigation pages left out,
    in their ranked order."""
    return [hit for hit in distinct(hits) if not is_navigation(hit.content)]
