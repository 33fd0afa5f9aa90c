"""Odd and hostile files: each is reported with a specific reason, or stored correctly, and
never stops the rest of the run."""

import os
import tracemalloc

import pytest

from pgask.ingest.loaders import Document, LoadError, read_file
from pgask.ingest.discovery import content_hash
from pgask.ingest.session import pipeline

from .helpers import write



def failed_by_name(report):
    return {os.path.basename(f["source"]): f["error"] for f in report.failed}


def test_huge_text_file_is_refused_without_tokenizing_it(kb, tmp_path):
    write(tmp_path / "ok.md", "# Fine\n\nA small document about lighthouses and their keepers.\n")
    line = ("log line with some words in it, repeated until the file is very large " * 4 + "\n").encode()
    with (tmp_path / "huge.txt").open("wb") as fh:
        for _ in range(50_000_000 // len(line) + 1):
            fh.write(line)
    kb.embedder.embed_query("load the model before measuring")
    tracemalloc.start()
    try:
        report = kb.ingest([tmp_path])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "over the limit" in failed_by_name(report)["huge.txt"]
    assert "PGASK_MAX_TEXT_MB" in failed_by_name(report)["huge.txt"]
    assert report.added == 1
    # the file is read and decoded, never tokenized: a few copies of 50 MB at most, not gigabytes
    assert peak < 400_000_000


def test_file_over_the_size_limit_is_not_read(tmp_path):
    big = tmp_path / "big.md"
    with big.open("wb") as fh:
        fh.truncate(30_000_000)  # sparse: 30 MB without writing them
    with pytest.raises(LoadError, match="over the 10 MB limit"):
        read_file(big, 10_000_000)


def test_very_long_lines_are_cut_into_bounded_chunks(kb, tmp_path):
    words = " ".join(f"word{i % 997}" for i in range(4_000))  # one line, no newline, ~12k tokens
    write(tmp_path / "oneline.txt", "Long line file\n" + words)
    write(tmp_path / "blob.md", "# Blob\n\n" + "A" * 300_000)  # one 300k-character "word"
    report = kb.ingest([tmp_path])
    assert report.failed == [] and report.added == 2
    with kb.connection() as conn:
        longest_tokens, longest_chars = conn.execute(
            f"SELECT max(token_count), max(length(content)) FROM {kb.schema}.chunks").fetchone()
    assert longest_tokens <= kb.settings.chunk_tokens
    assert longest_chars <= 20_000


def test_nul_bytes_are_removed_or_reported(kb, tmp_path):
    (tmp_path / "early.txt").write_bytes(b"text\x00with a NUL near the start")
    html = b"<html><body><h1>Late NUL</h1><p>" + b"padding words " * 1000 + b"x\x00y</p></body></html>"
    (tmp_path / "late.html").write_bytes(html)
    write(tmp_path / "front.md", '---\ntitle: "Front\\0matter"\nnote: "a\\0b"\n---\n\nBody about NUL bytes in metadata.\n')
    report = kb.ingest([tmp_path])
    assert "binary data" in failed_by_name(report)["early.txt"]
    assert report.added == 2
    with kb.connection() as conn:
        assert conn.execute(f"SELECT count(*) FROM {kb.schema}.chunks WHERE content LIKE '%x%y%'").fetchone()[0] >= 1
        assert conn.execute(f"SELECT metadata->>'note' FROM {kb.schema}.documents WHERE title = 'Frontmatter'").fetchone() == ("ab",)


def test_unstorable_document_is_reported_and_the_rest_stored(kb):
    docs = [Document("table:t/1", "Good", "A perfectly ordinary row about tea.", "text", {}),
            Document("table:t/2", "Bad", "A row whose metadata jsonb refuses.", "text", {"note": "a\x00b"}),
            Document("table:t/3", "Good too", "Another ordinary row about coffee.", "text", {})]
    report = kb.ingest_documents(docs)
    assert [f["source"] for f in report.failed] == ["table:t/2"]
    assert "database refused" in report.failed[0]["error"]
    assert report.added == 2


def test_file_that_changes_while_being_read_is_stored_as_read(kb, tmp_path):
    path = write(tmp_path / "moving.md", "# Moving\n\nThe first version talks about gardens.\n")

    kb.init()
    job = pipeline(kb)
    plan = job.plan_files([tmp_path])  # hashed, not yet loaded: the file changes in between
    path.write_text("# Moving\n\nThe second version talks about harbours and ships.\n")
    report = job.run_plan(plan)
    assert report.added == 1
    with kb.connection() as conn:
        stored = conn.execute(f"SELECT content_hash FROM {kb.schema}.documents").fetchone()[0]
    assert stored == content_hash(path.read_bytes(), job.signature)
    assert "harbours" in kb.search("ships", k=1)[0].content
    assert kb.ingest([tmp_path]).unchanged == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_unreadable_file_as_another_user(tmp_path):
    path = write(tmp_path / "secret.md", "# Secret\n\nonly root may read this\n")
    path.chmod(0o600)
    tmp_path.chmod(0o755)
    read, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: become nobody, try to read, report the error
        try:
            os.setgid(65534)
            os.setuid(65534)
            try:
                read_file(path, 10_000_000)
                message = "read it"
            except LoadError as exc:
                message = str(exc)
            os.write(write_end, message.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    message = os.read(read, 1000).decode()
    assert message == "secret.md: permission denied"
