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


BLOCK_TAGS = {"p", "div", "section", "article", "li", "tr", "br", "table", "ul", "ol", "blockquote", "dd", "dt",
              "dl", "figure", "figcaption", "caption", "main", "aside", "header", "form", "fieldset", "hr"}
SKIPPED_TAGS = {"script", "style", "noscript", "template", "head", "nav", "footer", "colgroup", "col", "svg", "button"}
# Element names of HTML. Any other "tag" in a document is a placeholder written in angle brackets
# (`CREATE INDEX <name> ON <table>`), which the parser took for an element: it is kept as text.
HTML_TAGS = BLOCK_TAGS | SKIPPED_TAGS | {
    "html", "body", "a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "del", "dfn", "em", "font", "i", "img",
    "ins", "kbd", "mark", "q", "s", "samp", "small", "span", "strong", "sub", "sup", "time", "u", "var", "wbr",
    "pre", "h1", "h2", "h3", "h4", "h5", "h6", "thead", "tbody", "tfoot", "th", "td", "center", "tt", "strike",
    "big", "nobr", "label", "input", "select", "textarea", "iframe", "object", "embed", "video", "audio", "source",
    "picture", "canvas", "map", "area", "meta", "link", "title", "base", "details", "summary", "menu", "output",
    "progress", "meter", "address", "hgroup", "search", "dialog", "slot", "track", "param", "legend", "optgroup",
}
CODE_LANGUAGE = re.compile(r"(?:^|\s)language-([\w+#.-]+)")


CODE_MARK = "\ue000"  # a private-use character: stands for a code block while text is tidied


def _render(node, parts: list[str], codes: list[str] | None = None, *, inline: bool = False) -> None:
    """Append the visible text of `node`'s children to `parts` as markdown.

    `inline` renders a table cell: code blocks as inline code and blocks as spaces, so that one
    row stays one readable line of labelled cells.
    """
    from bs4 import NavigableString, Tag

    for child in node.children:
        if isinstance(child, NavigableString):
            if child.__class__.__name__ in ("Comment", "Doctype", "Declaration", "ProcessingInstruction"):
                continue
            parts.append(re.sub(r"\s+", " ", str(child)))
            continue
        if not isinstance(child, Tag):
            continue
        name = child.name.lower()
        if name in SKIPPED_TAGS:
            continue
        if name not in HTML_TAGS:
            parts.append(f"<{child.name}>")
            _render(child, parts, codes, inline=inline)
        elif re.fullmatch(r"h[1-6]", name) and not inline:
            heading = " ".join(child.get_text(" ").split())
            if heading:
                parts.append(f"\n\n{'#' * int(name[1])} {heading}\n\n")
        elif name == "pre":
            code = child.get_text().strip("\n")
            if inline:
                parts.append(f" `{' '.join(code.split())}` " if code.strip() else " ")
            else:
                language = CODE_LANGUAGE.search(" ".join((child.find("code") or child).get("class") or []))
                fence = "~~~" if "```" in code else "```"
                # held aside until the text around it is tidied, which would eat its indentation
                parts.append(f"\n\n{CODE_MARK}{len(codes)}{CODE_MARK}\n\n")
                codes.append(f"{fence}{language.group(1) if language else ''}\n{code}\n{fence}")
        elif name == "code":
            code = " ".join(child.get_text().split())
            if code:
                parts.append(f"`{code}`" if "`" not in code else f"`` {code} ``")
        elif name == "table":
            text = _table_text(child)
            parts.append(f" {text} " if inline else f"\n\n{text}\n\n")
        elif inline:
            parts.append(" - " if name == "li" else " " if name in BLOCK_TAGS else "")
            _render(child, parts, codes, inline=True)
            if name in BLOCK_TAGS:
                parts.append(" ")
        else:
            block = name in BLOCK_TAGS
            if block:
                parts.append("\n\n" if name != "br" else "\n")
            if name == "li":
                parts.append("- ")
            _render(child, parts, codes)
            if block and name != "br":
                parts.append("\n\n")


def _cell_text(cell) -> str:
    parts: list[str] = []
    _render(cell, parts, inline=True)
    return re.sub(r"^- ", "", " ".join("".join(parts).split()))


def _table_text(table) -> str:
    """A table as paragraphs, one per row, each cell labelled with its column header ("Default: 8192")."""
    rows = [tr for tr in table.find_all("tr") if tr.find_parent("table") is table]
    lines = []
    caption = table.find("caption")
    if caption is not None and caption.find_parent("table") is table:
        lines.append(_cell_text(caption))
    header: list[str] | None = None
    if rows:
        first = rows[0].find_all(["th", "td"], recursive=False)
        if rows[0].find_parent("thead") is not None or (first and all(c.name == "th" for c in first)):
            header, rows = [_cell_text(c) for c in first], rows[1:]
    for tr in rows:
        cells = [_cell_text(c) for c in tr.find_all(["th", "td"], recursive=False)]
        if not any(cells):
            continue
        if header and len(header) == len(cells):
            lines.append("\n".join(f"{h}: {c}" if h else c for h, c in zip(header, cells) if c))
        else:
            lines.append(" | ".join(c for c in cells if c))
    if header and not rows:
        lines.append(" | ".join(h for h in header if h))
    return "\n\n".join(line for line in lines if line)


def html_to_markdown(soup) -> str:
    """Visible text of an HTML body as markdown: headings as ATX headings, <pre> as fenced code,
    inline code in backticks, tables as rows of labelled cells; no tags, attributes or entities."""
    parts: list[str] = []
    codes: list[str] = []
    _render(soup.body or soup, parts, codes)
    text = "".join(parts)
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n[ \t]+(?=\S)", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return re.sub(f"{CODE_MARK}(\\d+){CODE_MARK}", lambda m: codes[int(m.group(1))], text)


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
