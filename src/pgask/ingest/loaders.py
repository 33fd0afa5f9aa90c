"""Files -> Document(source, title, text, metadata).

Every loader returns text in one shape the chunker understands: markdown, where structure
matters (markdown, HTML and reStructuredText headings become ATX `#` headings), or plain text.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import PgaskError
from .html_markdown import html_to_markdown


# Part of every content hash: a change to what a loader makes of a file re-ingests it.
# 2: HTML embedded in markdown converted as HTML (tables as labelled rows, no tags), definition lists.
LOADER_VERSION = "2"


class LoadError(PgaskError):
    """One file could not be read; the message says why, the rest of the run goes on."""


@dataclass
class Document:
    source: str
    title: str
    text: str
    format: str  # "markdown" (headings are structure) or "text"
    metadata: dict = field(default_factory=dict)


MARKDOWN = {".md", ".markdown", ".mdown", ".mkd"}
TEXT = {".txt", ".text"}
RST = {".rst"}
HTML = {".html", ".htm"}
PDF = {".pdf"}
SUPPORTED = MARKDOWN | TEXT | RST | HTML | PDF


def supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED


def decode(data: bytes, name: str) -> str:
    """Bytes -> str: UTF-8 (with or without BOM) first, then charset detection; binary data is refused."""
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LoadError(f"{name}: binary data, not text (NUL bytes found)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise LoadError(f"{name}: not text in any known encoding")
    if best.encoding in LATIN_SINGLE_BYTE:
        # Short Western texts fit many Latin code pages equally well; Windows-1252 is by far the
        # most common of them, and detection would otherwise pick e.g. Baltic for French.
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            pass
    return str(best)


LATIN_SINGLE_BYTE = {
    "cp1250", "cp1252", "cp1254", "cp1257", "cp1258", "cp437", "cp850", "cp775", "latin_1", "hp_roman8",
    "mac_roman", "mac_latin2", "mac_iceland", "mac_turkish",
    *(f"iso8859_{n}" for n in (1, 2, 3, 4, 9, 10, 13, 14, 15, 16)),
}


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    return text.strip("\n")


FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)---[ \t]*(?:\n|\Z)", re.S)


def _front_matter(text: str) -> tuple[dict, str]:
    match = FRONT_MATTER.match(text)
    if not match:
        return {}, text
    import yaml

    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return {}, text
    if not isinstance(meta, dict):
        return {}, text
    # JSON-safe values only (front matter becomes jsonb metadata), and no NUL, which jsonb refuses
    meta = json.loads(json.dumps(meta, default=str).replace("\\u0000", ""))
    return meta, text[match.end():]


def _first_heading(text: str) -> str | None:
    match = re.search(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", text, re.M)
    return match.group(1).strip() if match else None


def load_markdown(path: Path, data: bytes) -> tuple[str, str, str, dict]:
    meta, body = _front_matter(_clean(decode(data, path.name)))
    body = markdown_to_text(body)
    title = str(meta.get("title") or "").strip() or _first_heading(body) or path.stem
    return title, body.strip("\n"), "markdown", meta


FENCE = re.compile(r"^[ ]{0,3}(`{3,}|~{3,})")
TABLE_OPEN = re.compile(r"<table\b", re.I)
TABLE_CLOSE = re.compile(r"</table\s*>", re.I)


def _isolate_tables(text: str) -> str:
    """Each <table>...</table> outside code fences as one HTML block: on lines of its own, with no
    blank or indented lines, which would end the block early and turn the rest into markdown
    paragraphs or indented code (docs exported from DITA are full of both)."""
    out: list[str] = []
    fence: str | None = None
    depth = 0
    for line in text.split("\n"):
        if depth == 0:
            if fence is not None:
                if line.strip().startswith(fence):
                    fence = None
                out.append(line)
                continue
            opened = FENCE.match(line)
            table = TABLE_OPEN.search(line)
            if opened or not table:
                fence = opened.group(1)[:3] if opened else None
                out.append(line)
                continue
            if line[:table.start()].strip():
                out.extend([line[:table.start()], ""])
            line = line[table.start():]
        depth += len(TABLE_OPEN.findall(line)) - len(TABLE_CLOSE.findall(line))
        if depth > 0:
            if line.strip():
                out.append(line.strip())
            continue
        depth = 0
        end = list(TABLE_CLOSE.finditer(line))[-1].end()
        out.extend([line[:end].strip(), "", line[end:]])
    return "\n".join(out)


def markdown_to_text(text: str) -> str:
    """Markdown, with any HTML it embeds, as clean markdown: HTML tables become rows of labelled
    cells, <pre> and fences stay code, inline code keeps its backticks, tags and attributes go
    and entities are decoded. Rendered to HTML by markdown-it, then read back like an HTML file,
    so embedded HTML and markdown come out the same way."""
    from bs4 import BeautifulSoup

    html = _markdown_renderer().render(_isolate_tables(text))
    return html_to_markdown(BeautifulSoup(html, "html.parser"))


@functools.lru_cache(maxsize=1)
def _markdown_renderer():
    from markdown_it import MarkdownIt
    from mdit_py_plugins.deflist import deflist_plugin

    return MarkdownIt("commonmark", {"html": True}).enable("table").use(deflist_plugin)


def load_text(path: Path, data: bytes) -> tuple[str, str, str, dict]:
    text = _clean(decode(data, path.name))
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    title = first_line if 0 < len(first_line) <= 120 else path.stem
    return title, text, "text", {}


RST_ADORNMENT = re.compile(r"^([=\-`:'\"~^_*+#<>])\1{2,}[ \t]*$")


def rst_to_markdown(text: str) -> str:
    """reStructuredText section titles (underlined, optionally overlined) -> ATX headings.

    Levels follow the order in which adornment styles first appear, as docutils does.
    """
    lines = text.split("\n")
    styles: list[tuple[str, bool]] = []
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        over = RST_ADORNMENT.match(line)
        if over and i + 2 < len(lines) and lines[i + 1].strip() and RST_ADORNMENT.match(lines[i + 2]) \
                and lines[i + 2][0] == line[0]:
            style, title, i = (line[0], True), lines[i + 1].strip(), i + 3
        elif line.strip() and not over and i + 1 < len(lines) and RST_ADORNMENT.match(lines[i + 1]) \
                and len(lines[i + 1].rstrip()) >= len(line.rstrip()):
            style, title, i = (lines[i + 1][0], False), line.strip(), i + 2
        else:
            out.append(line)
            i += 1
            continue
        if style not in styles:
            styles.append(style)
        out.extend(["", "#" * min(styles.index(style) + 1, 6) + " " + title, ""])
    return "\n".join(out)


def load_rst(path: Path, data: bytes) -> tuple[str, str, str, dict]:
    body = rst_to_markdown(_clean(decode(data, path.name)))
    return _first_heading(body) or path.stem, body.strip("\n"), "markdown", {}


def load_html(path: Path, data: bytes) -> tuple[str, str, str, dict]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode(data, path.name), "html.parser")
    body = html_to_markdown(soup)
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    return title or _first_heading(body) or path.stem, body, "markdown", {}


def load_pdf(path: Path, data: bytes) -> tuple[str, str, str, dict]:
    import io
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # pypdf warns on every odd object
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):
                    raise LoadError(f"{path.name}: encrypted PDF (needs a password); decrypt it first")
            except NotImplementedError as exc:
                raise LoadError(f"{path.name}: encrypted PDF with an unsupported cipher: {exc}") from exc
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        info_title = (reader.metadata.title if reader.metadata else None) or ""
    except LoadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise LoadError(f"{path.name}: unreadable PDF ({exc})") from exc
    text = _clean("\n\n".join(p for p in pages if p))
    if not text:
        raise LoadError(f"{path.name}: PDF has no extractable text (scanned images need OCR first)")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    title = str(info_title).strip() or (first if len(first) <= 120 else path.stem)
    return title, text, "text", {"pages": len(pages)}


LOADERS: dict[str, Callable[[Path, bytes], tuple[str, str, str, dict]]] = {
    **{ext: load_markdown for ext in MARKDOWN},
    **{ext: load_text for ext in TEXT},
    **{ext: load_rst for ext in RST},
    **{ext: load_html for ext in HTML},
    **{ext: load_pdf for ext in PDF},
}


def load(path: Path, data: bytes, source: str | None = None, *, max_text_chars: int | None = None) -> Document:
    """Parse one file's bytes (read once by the caller, who also hashed them).

    Text over `max_text_chars` is refused: embedding it would take hours and hold its chunks
    and vectors in memory at once, so the user is told to split it or raise the limit.
    """
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise LoadError(f"{path.name}: unsupported file type {path.suffix or '(none)'}")
    if not data.strip():
        raise LoadError(f"{path.name}: empty file")
    title, text, fmt, meta = loader(path, data)
    # Postgres text cannot hold NUL, whichever format it came from
    title, text = title.replace("\x00", ""), text.replace("\x00", "")
    if not text.strip():
        raise LoadError(f"{path.name}: no text")
    if max_text_chars is not None and len(text) > max_text_chars:
        raise LoadError(
            f"{path.name}: {len(text) / 1e6:.1f} million characters of text is over the limit of "
            f"{max_text_chars / 1e6:.0f} million per document (split the file, or set PGASK_MAX_TEXT_MB)"
        )
    metadata = {**meta, "format": path.suffix.lower().lstrip("."), "file_name": path.name}
    return Document(source=source or str(path), title=title, text=text, format=fmt, metadata=metadata)


def read_file(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, refusing files too large to hold in memory at once."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise LoadError(
                f"{path.name}: {size / 1e6:.0f} MB is over the {max_bytes / 1e6:.0f} MB limit per file "
                "(set PGASK_MAX_FILE_MB to raise it)"
            )
        return path.read_bytes()
    except PermissionError as exc:
        raise LoadError(f"{path.name}: permission denied") from exc
    except IsADirectoryError as exc:
        raise LoadError(f"{path.name}: is a directory") from exc
    except OSError as exc:
        raise LoadError(f"{path.name}: cannot read ({exc.strerror or exc})") from exc
