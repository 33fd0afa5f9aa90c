from pathlib import Path

import pytest

from pgask.ingest.loaders import LoadError, load, rst_to_markdown

from .helpers import make_pdf, write



def load_path(path: Path):
    return load(path, path.read_bytes())


def test_markdown_title_from_front_matter_and_metadata(tmp_path):
    doc = load_path(write(tmp_path / "a.md", "---\ntitle: Front Title\nowner: ops\n---\n# Heading\n\nBody text.\n"))
    assert doc.title == "Front Title"
    assert doc.metadata["owner"] == "ops"
    assert doc.metadata["format"] == "md"
    assert doc.format == "markdown"
    assert not doc.text.startswith("---")


def test_markdown_title_from_first_heading(tmp_path):
    doc = load_path(write(tmp_path / "b.markdown", "Intro line.\n\n## Second Level Title\n\nText.\n"))
    assert doc.title == "Second Level Title"


def test_html_title_headings_and_no_script(tmp_path):
    doc = load_path(write(tmp_path / "c.html", """
        <html><head><title>Page Title</title><style>p {}</style></head>
        <body><h2>Install</h2><p>Run the installer.</p><script>alert(1)</script>
        <pre>make
make install</pre></body></html>"""))
    assert doc.title == "Page Title"
    assert "## Install" in doc.text
    assert "alert" not in doc.text and "p {}" not in doc.text
    assert "```\nmake\nmake install\n```" in doc.text


def test_rst_headings_become_levels_in_order_of_appearance():
    text = "=====\nTitle\n=====\n\nIntro.\n\nSection\n-------\n\nBody.\n\nSub\n~~~\n\nMore.\n"
    converted = rst_to_markdown(text)
    assert "# Title" in converted
    assert "## Section" in converted
    assert "### Sub" in converted


def test_pdf_text_and_title(tmp_path):
    doc = load_path(make_pdf(tmp_path / "d.pdf", "A PDF Title", ["First paragraph about owls.", "Second one."]))
    assert doc.title == "A PDF Title"
    assert "owls" in doc.text
    assert doc.metadata["pages"] == 1


def test_text_title_is_first_line(tmp_path):
    doc = load_path(write(tmp_path / "e.txt", "\n\nShort title line\nbody body body\n"))
    assert doc.title == "Short title line"
    assert doc.format == "text"


def test_latin1_text_is_decoded(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("Café crème brûlée, déjà vu, naïve façade, plusieurs phrases en français ici.".encode("latin-1"))
    assert "brûlée" in load_path(path).text


@pytest.mark.parametrize("name,data,reason", [
    ("bin.md", bytes(range(256)) * 10, "binary data"),
    ("empty.txt", b"", "empty file"),
    ("blank.md", b"\n\n   \n", "empty file"),
    ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf", "unreadable PDF"),
    ("thing.xyz", b"data", "unsupported file type"),
])
def test_bad_files_raise_a_specific_error(tmp_path, name, data, reason):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(LoadError, match=reason):
        load_path(path)


def test_encrypted_pdf_is_reported(tmp_path):
    from pypdf import PdfReader, PdfWriter

    plain = make_pdf(tmp_path / "plain.pdf", "Secret", ["Hidden words."])
    writer = PdfWriter()
    for page in PdfReader(plain).pages:
        writer.add_page(page)
    writer.encrypt(user_password="hunter2", owner_password="owner", algorithm="RC4-128")
    locked = tmp_path / "locked.pdf"
    with locked.open("wb") as fh:
        writer.write(fh)
    with pytest.raises(LoadError, match="encrypted PDF"):
        load_path(locked)


def test_korean_cp949_text_is_decoded(tmp_path):
    path = tmp_path / "ko.txt"
    text = "안녕하세요. 이것은 한국어 문서입니다. 데이터베이스 설정 방법을 설명합니다."
    path.write_bytes(text.encode("cp949"))
    assert load_path(path).text == text
