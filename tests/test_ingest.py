import os

import pytest

from pgask.errors import PgaskError

from .helpers import write



def counts(kb):
    status = kb.status()
    return status.documents, status.chunks


def test_ingest_stores_every_format_then_skips_unchanged(kb, corpus):
    report = kb.ingest([corpus])
    assert (report.added, report.updated, report.unchanged, report.failed) == (4, 0, 0, [])
    docs, chunks = counts(kb)
    assert docs == 4 and chunks == report.chunks > 4

    again = kb.ingest([corpus])
    assert (again.added, again.updated, again.unchanged, again.chunks) == (0, 0, 4, 0)
    assert counts(kb) == (docs, chunks)


def test_changed_document_is_replaced_and_pruned_document_deleted(kb, corpus):
    kb.ingest([corpus])
    garden = corpus / "garden.md"
    garden.write_text(garden.read_text() + "\n## Harvest\n\nPick courgettes while they are small and tender.\n")
    (corpus / "notes.txt").unlink()

    report = kb.ingest([corpus])
    assert (report.added, report.updated, report.unchanged, report.deleted) == (0, 1, 2, 0)
    assert any("courgettes" in h.content for h in kb.search("when to pick zucchini", k=3))

    pruned = kb.ingest([corpus], prune=True)
    assert pruned.deleted == 1
    assert counts(kb)[0] == 3
    assert not any(h.source.endswith("notes.txt") for h in kb.search("sourdough starter feeding", k=10, threshold=0))


def test_prune_only_touches_documents_under_the_given_folder(kb, tmp_path):
    a = write(tmp_path / "a" / "one.md", "# One\n\nThe first folder's only document about herons.\n")
    write(tmp_path / "b" / "two.md", "# Two\n\nThe second folder's only document about otters.\n")
    kb.ingest([tmp_path / "a", tmp_path / "b"])
    a.unlink()
    report = kb.ingest([tmp_path / "b"], prune=True)
    assert report.deleted == 0
    report = kb.ingest([tmp_path / "a"], prune=True)
    assert report.deleted == 1
    assert counts(kb)[0] == 1


def test_bad_files_are_reported_and_the_rest_is_stored(kb, corpus):
    (corpus / "binary.md").write_bytes(bytes(range(256)) * 20)
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "image.png").write_bytes(b"\x89PNG\r\n")
    report = kb.ingest([corpus])
    failed = {os.path.basename(f["source"]): f["error"] for f in report.failed}
    assert set(failed) == {"binary.md", "empty.txt"}
    assert "binary data" in failed["binary.md"] and "empty file" in failed["empty.txt"]
    assert [os.path.basename(s) for s in report.skipped] == ["image.png"]
    assert report.added == 4


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_reported(kb, corpus):
    locked = write(corpus / "locked.md", "# Locked\n\ntext\n")
    locked.chmod(0)
    report = kb.ingest([corpus])
    assert [os.path.basename(f["source"]) for f in report.failed] == ["locked.md"]
    assert report.added == 4


def test_include_and_exclude_globs(kb, corpus):
    report = kb.ingest([corpus], include=["*.md", "*.html"], exclude=["guides/*"])
    assert report.added == 1
    assert kb.search("chain lubricant", k=1, threshold=0)[0].source.endswith("garden.md")


def test_missing_path_and_empty_folder_are_errors(kb, tmp_path):
    with pytest.raises(PgaskError, match="no such file or directory"):
        kb.ingest([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(PgaskError, match="no documents found"):
        kb.ingest([tmp_path / "empty"])
    write(tmp_path / "other" / "x.png", "png")
    with pytest.raises(PgaskError, match="no supported documents"):
        kb.ingest([tmp_path / "other"])


def test_symlink_loop_does_not_hang(kb, tmp_path):
    root = write(tmp_path / "loop" / "doc.md", "# Loop\n\nA document next to a symlink loop.\n").parent
    os.symlink(root, root / "again")
    report = kb.ingest([root])
    assert report.added == 1


def test_another_model_is_refused_with_instructions(kb, corpus, settings):
    from pgask.db import schema as db_schema

    kb.ingest([corpus])
    with kb.connection() as conn:
        with pytest.raises(PgaskError, match="re-embed"):
            db_schema.check_model(conn, settings.schema, model="openai:text-embedding-3-small", dim=1536)


def test_document_stored_whole_chunk_ids_unique(kb, corpus):
    kb.ingest([corpus])
    with kb.connection() as conn:
        rows = conn.execute(f"SELECT d.chunk_count, count(c.*) FROM {kb.schema}.documents d "
                            f"LEFT JOIN {kb.schema}.chunks c ON c.document_id = d.id GROUP BY d.id").fetchall()
        assert rows and all(expected == actual for expected, actual in rows)
        dup = conn.execute(f"SELECT count(*) - count(DISTINCT (document_id, ordinal)) FROM {kb.schema}.chunks").fetchone()[0]
        assert dup == 0


def test_dangling_symlink_is_reported(kb, corpus):
    os.symlink(corpus / "missing-target.md", corpus / "dangling.md")
    report = kb.ingest([corpus])
    assert [os.path.basename(f["source"]) for f in report.failed] == ["dangling.md"]
    assert "cannot read" in report.failed[0]["error"]
    assert report.added == 4


def test_documents_from_elsewhere_are_streamed_diffed_and_pruned(kb):
    from pgask.ingest.loaders import Document

    def rows(texts):
        return (Document(f"table:public.notes/{i}", f"Note {i}", text, "text", {"id": i}) for i, text in texts.items())

    texts = {i: f"Row {i} explains how to calibrate sensor model {i} with a reference weight." for i in range(30)}
    first = kb.ingest_documents(rows(texts), prune_scope=["table:public.notes"])
    assert (first.added, first.unchanged) == (30, 0)

    texts[3] = "Row 3 now explains how to replace the battery of a wall clock."
    del texts[7]
    second = kb.ingest_documents(rows(texts), prune_scope=["table:public.notes"])
    assert (second.added, second.updated, second.unchanged, second.deleted) == (0, 1, 28, 1)
    best = kb.search("changing a clock battery", k=1)[0]
    assert best.source == "table:public.notes/3"
    assert counts(kb)[0] == 29


EMBEDDED_TABLE_PAGE = """---
title: Server parameters
---

Parameters that size the memory of each segment.

## <a id="vmem"></a>Memory limits

<table class="table frame-all" id="t1"><caption><span class="table--title-label">Table 1. </span><span class="title">Memory parameters</span></caption><colgroup><col><col></colgroup><thead class="thead">
<tr class="row">
<th class="entry" id="t1__entry__1">Parameter</th>
<th class="entry" id="t1__entry__2">Meaning</th>
</tr>
</thead><tbody class="tbody">

<tr class="row">
<td class="entry nocellnorowborder" style="vertical-align:top;" headers="t1__entry__1"><code class="ph codeph">zq_vmem_ceiling</code></td>
<td class="entry" headers="t1__entry__2">Sets the most memory a quokkaworker may use, in megabytes &amp; pages.<p class="p">Recommended: 8192</p></td>
</tr>
</tbody></table>

Run `SELECT 1;` after changing it:

```sql
SELECT name,
       setting
FROM pg_settings;
```
"""


def test_html_embedded_in_markdown_is_stored_as_clean_text(kb, tmp_path):
    write(tmp_path / "params.md", EMBEDDED_TABLE_PAGE)
    kb.ingest([tmp_path])
    with kb.connection() as conn:
        rows = conn.execute(f"SELECT heading, content, fts::text FROM {kb.schema}.chunks").fetchall()
    text = "\n".join(f"{h}\n{c}\n{f}" for h, c, f in rows)
    for markup in ("<", "class=", "&amp;", "headers=", "vertical-align"):
        assert markup not in text, markup
    content = "\n".join(c for _, c, _ in rows)
    # header kept with each cell, code kept as code (indentation too), entities decoded
    assert "Parameter: `zq_vmem_ceiling`" in content
    assert "Meaning: Sets the most memory a quokkaworker may use, in megabytes & pages. Recommended: 8192" in content
    assert "```sql\nSELECT name,\n       setting\nFROM pg_settings;\n```" in content
    assert any(h.endswith("Memory limits") for h, _, _ in rows)
    hits = kb.search("quokkaworker", mode="keyword", k=1)
    assert hits and "zq_vmem_ceiling" in hits[0].content


def test_a_new_loader_version_reingests_unchanged_files(kb, tmp_path, monkeypatch):
    from pgask.ingest import loaders

    write(tmp_path / "params.md", EMBEDDED_TABLE_PAGE)
    assert kb.ingest([tmp_path]).added == 1
    assert kb.ingest([tmp_path]).unchanged == 1
    monkeypatch.setattr(loaders, "LOADER_VERSION", loaders.LOADER_VERSION + "-next")
    assert kb.ingest([tmp_path]).updated == 1
