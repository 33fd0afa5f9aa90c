"""HTML as markdown: the visible text of a page or of HTML embedded in markdown, with headings as
ATX headings, <pre> as fenced code, inline code in backticks and tables as rows of labelled cells."""

from __future__ import annotations

import re


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
