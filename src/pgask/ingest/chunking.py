"""Document -> chunks: split at headings, then into pieces the embedding model can read whole.

Lengths are counted in the embedding model's own tokens, so no chunk is silently truncated by
the model. Each chunk keeps its section path ("Title > Section > Subsection"); the path is
embedded together with the chunk text, so a passage is found by what its section is about.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from .loaders import Document

# text -> (start, end) character offsets of each model token (special tokens excluded)
TokenOffsets = Callable[[Sequence[str]], list[list[tuple[int, int]]]]

SEPARATOR = " > "


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    heading: str  # section path
    content: str
    token_count: int  # model tokens of content

    @property
    def embed_text(self) -> str:
        return f"{self.heading}\n\n{self.content}" if self.heading else self.content


@dataclass(frozen=True)
class Section:
    path: tuple[str, ...]
    text: str


def _inline_text(token) -> str:
    """Plain text of a markdown-it inline token (emphasis, links and code marks removed)."""
    parts = [child.content for child in token.children or [] if child.type in ("text", "code_inline")]
    return " ".join("".join(parts).split()) or token.content.strip()


@functools.lru_cache(maxsize=1)
def _parsers():
    """A block-level parser for structure, and a full one for heading text.

    Inline markup (emphasis, links) is most of markdown-it's work and matters only in headings,
    so documents are parsed at block level and each heading's inline markup on its own.
    """
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").disable("inline"), MarkdownIt("commonmark")


def markdown_sections(text: str, title: str) -> list[Section]:
    """Sections of a markdown text, each with its heading path; code fences are never headings."""
    blocks, inline = _parsers()
    env: dict = {}  # link reference definitions, which heading text may use
    tokens = blocks.parse(text, env)
    lines = text.split("\n")
    headings: list[tuple[int, int, int, str]] = []  # level, first line, line after, text
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.map:
            heading = _inline_text(inline.parseInline(tokens[i + 1].content, env)[0])
            headings.append((int(tok.tag[1]), tok.map[0], tok.map[1], heading))

    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    root = (title,) if title else ()

    def path() -> tuple[str, ...]:
        names = tuple(name for _, name in stack)
        # a document whose first heading is its title does not repeat it
        if names and root and names[0].casefold() == title.casefold():
            return names
        return root + names

    start = 0
    for level, first, after, name in headings:
        body = "\n".join(lines[start:first]).strip()
        if body:
            sections.append(Section(path(), body))
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, name))
        start = after
    body = "\n".join(lines[start:]).strip()
    if body:
        sections.append(Section(path(), body))
    return sections


# Where a chunk may end, best first: a blank line, a line end, a sentence end, a word end.
def _break_quality(text: str, prev_end: int, next_start: int) -> int:
    gap = text[prev_end:next_start]
    if not gap:
        return 0  # inside a word
    if gap.count("\n") >= 2:
        return 4
    if "\n" in gap:
        return 3
    if prev_end and text[prev_end - 1] in ".!?:;":
        return 2
    return 1


def split_tokens(text: str, offsets: list[tuple[int, int]], budget: int, overlap: int) -> list[tuple[int, int]]:
    """(first, after) token ranges of at most `budget` tokens, ending at the best break available.

    A range ends at the latest best-quality break in its second half; the next range starts up to
    `overlap` tokens earlier, at a sentence or line start, so context carries across the cut.
    """
    n = len(offsets)
    if n <= budget:
        return [(0, n)] if n else []
    quality = [0] + [_break_quality(text, offsets[i - 1][1], offsets[i][0]) for i in range(1, n)]
    ranges: list[tuple[int, int]] = []
    start = 0
    while start < n:
        if n - start <= budget:
            ranges.append((start, n))
            break
        low, high = start + max(1, budget // 2), start + budget
        end = max(range(low, high + 1), key=lambda i: (quality[i], i))
        ranges.append((start, end))
        next_start = end
        for i in range(max(start + 1, end - overlap), end):
            if quality[i] >= 2:
                next_start = i
                break
        start = next_start
    return ranges


MAX_SECTION_CHARS = 20_000  # tokenised at once; bounds memory on huge plain-text files


def _bounded(section: Section) -> list[Section]:
    """A section cut at line ends into pieces of at most MAX_SECTION_CHARS characters."""
    if len(section.text) <= MAX_SECTION_CHARS:
        return [section]
    pieces, text = [], section.text
    while len(text) > MAX_SECTION_CHARS:
        cut = text.rfind("\n\n", 0, MAX_SECTION_CHARS)
        if cut < MAX_SECTION_CHARS // 2:
            cut = text.rfind("\n", 0, MAX_SECTION_CHARS)
        if cut < MAX_SECTION_CHARS // 2:
            cut = text.rfind(" ", 0, MAX_SECTION_CHARS)
        if cut < MAX_SECTION_CHARS // 2:
            cut = MAX_SECTION_CHARS
        pieces.append(text[:cut])
        text = text[cut:]
    pieces.append(text)
    return [Section(section.path, piece.strip()) for piece in pieces if piece.strip()]


def chunk_document(
    doc: Document,
    token_offsets: TokenOffsets,
    *,
    max_tokens: int,
    chunk_tokens: int = 200,
    overlap_tokens: int = 32,
) -> Iterator[Chunk]:
    """Chunks of one document; `max_tokens` is the model's input limit (path and text together).

    chunk_tokens=0 keeps each document whole, as one chunk under its title: for corpora of short
    records (abstracts, tickets). Keyword search reads all of it; the model reads its first
    `max_tokens` tokens, as retrieval benchmarks embed documents.
    """
    if chunk_tokens == 0:
        text = doc.text.strip()
        if text or doc.title:  # a record may be all title
            yield Chunk(0, doc.title, text, len(token_offsets([text])[0]) if text else 0)
        return
    if doc.format == "markdown":
        sections = markdown_sections(doc.text, doc.title)
    else:
        sections = [Section((doc.title,) if doc.title else (), doc.text.strip())]
    ordinal = 0
    heading_tokens: dict[str, tuple[str, int]] = {}
    for section in (piece for s in sections for piece in _bounded(s)):
        heading = SEPARATOR.join(section.path)
        if heading not in heading_tokens:
            h_offsets = token_offsets([heading])[0]
            # the path may take at most half the model's input; a longer one is cut short
            if len(h_offsets) > max_tokens // 2:
                heading_tokens[heading] = (heading[: h_offsets[max_tokens // 2 - 1][1]] + "…", max_tokens // 2 + 1)
            else:
                heading_tokens[heading] = (heading, len(h_offsets))
        shown, h_tokens = heading_tokens[heading]
        budget = max(16, min(chunk_tokens, max_tokens - h_tokens - 2))
        offsets = token_offsets([section.text])[0]
        for first, after in split_tokens(section.text, offsets, budget, overlap_tokens):
            content = section.text[offsets[first][0]: offsets[after - 1][1]].strip()
            if content:
                yield Chunk(ordinal, shown, content, after - first)
                ordinal += 1


def sentences(text: str) -> list[str]:
    """Sentences and list items of a passage, for extractive answers."""
    pieces = re.split(r"(?<=[.!?])\s+(?=[\"'(\[`*A-Z0-9])|\n\s*\n|\n(?=\s*(?:[-*+]|\d+\.)\s)", text)
    # fewer than five words is a caption or a heading, not a statement worth quoting
    return [" ".join(p.split()) for p in pieces if p and len(p.split()) >= 5]
