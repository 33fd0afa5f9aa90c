import pytest

from pgask.embed import get_embedder
from pgask.ingest.chunking import chunk_document, markdown_sections, split_tokens
from pgask.ingest.loaders import Document


@pytest.fixture(scope="module")
def embedder():
    return get_embedder("sentence-transformers/all-MiniLM-L6-v2", backend="torch")


def test_sections_follow_nested_headings_and_ignore_code_fences():
    text = "Intro.\n\n## A\n\nalpha\n\n### A1\n\nbeta\n\n```\n# not a heading\n```\n\n## B\n\ngamma\n"
    sections = markdown_sections(text, "Doc")
    assert [s.path for s in sections] == [("Doc",), ("Doc", "A"), ("Doc", "A", "A1"), ("Doc", "B")]
    assert "# not a heading" in sections[2].text


def test_title_heading_is_not_repeated():
    sections = markdown_sections("# Guide\n\ntext\n\n## Part\n\nmore\n", "Guide")
    assert [s.path for s in sections] == [("Guide",), ("Guide", "Part")]


def test_chunks_fit_the_model_and_keep_their_section_path(embedder):
    sentence = "The replication slot keeps write-ahead log segments until every subscriber confirms them. "
    text = "# Replication\n\n## Slots\n\n" + "\n\n".join(sentence * 3 for _ in range(20)) + "\n\n## Other\n\nShort.\n"
    doc = Document("x.md", "Replication", text, "markdown")
    chunks = list(chunk_document(doc, embedder.token_offsets, max_tokens=embedder.max_tokens,
                                 chunk_tokens=100, overlap_tokens=20))
    assert len(chunks) > 5
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        real = len(embedder.token_offsets([chunk.content])[0])
        assert real <= 100
        assert len(embedder.token_offsets([chunk.embed_text])[0]) <= embedder.max_tokens
    assert chunks[0].heading == "Replication > Slots"
    assert chunks[0].embed_text.startswith("Replication > Slots\n\n")
    assert chunks[-1].heading == "Replication > Other"
    # consecutive pieces of one section overlap by at least a sentence
    assert chunks[1].content[:40] in chunks[0].content


def test_split_prefers_paragraph_breaks(embedder):
    text = "one two three four five six.\n\nseven eight nine ten eleven twelve."
    offsets = embedder.token_offsets([text])[0]
    ranges = split_tokens(text, offsets, budget=len(offsets) - 2, overlap=0)
    first = text[offsets[ranges[0][0]][0]: offsets[ranges[0][1] - 1][1]]
    assert first == "one two three four five six."


def test_long_heading_is_cut_to_half_the_model_input(embedder):
    doc = Document("y.txt", "word " * 400, "Body text here.", "text")
    chunks = list(chunk_document(doc, embedder.token_offsets, max_tokens=embedder.max_tokens))
    assert len(embedder.token_offsets([chunks[0].embed_text])[0]) <= embedder.max_tokens


def test_chunk_tokens_zero_keeps_each_document_whole(embedder):
    long_text = "Sentence about replication slots and write-ahead logs. " * 80  # beyond the model's 256 tokens
    [chunk] = chunk_document(Document("a", "Slots", long_text, "markdown"), embedder.token_offsets,
                             max_tokens=embedder.max_tokens, chunk_tokens=0)
    assert (chunk.heading, chunk.content) == ("Slots", long_text.strip())
    assert chunk.token_count > embedder.max_tokens
    [title_only] = chunk_document(Document("b", "Only a title", "", "text"), embedder.token_offsets,
                                  max_tokens=embedder.max_tokens, chunk_tokens=0)
    assert (title_only.embed_text.strip(), title_only.token_count) == ("Only a title", 0)
    assert list(chunk_document(Document("c", "", "  ", "text"), embedder.token_offsets,
                               max_tokens=embedder.max_tokens, chunk_tokens=0)) == []
def test_heading_text_drops_inline_markup_and_resolves_reference_links():
    text = "# The *Guide*\n\n## Using [`gpfdist`][gp] and [links](http://x)\n\nbody\n\n[gp]: http://example.com\n"
    sections = markdown_sections(text, "The Guide")
    assert sections[0].path == ("The Guide", "Using gpfdist and links")
