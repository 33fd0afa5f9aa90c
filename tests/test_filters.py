"""Metadata and source filters: k results whenever k chunks match, also through an HNSW index."""

import numpy as np
import pytest

from pgask import search as searching
from pgask.config import Settings
from pgask.ingest.loaders import Document
from pgask.kb import KnowledgeBase

TOPICS = ["gardening", "cycling", "baking", "astronomy", "plumbing", "sailing", "knitting", "chess"]
RED = {i for i in range(240) if i % 30 == 0}  # 8 of 240 notes: a selective filter


@pytest.fixture(scope="module")
def indexed(home):
    """240 notes with an HNSW index, shared by this module's tests (which only read)."""
    notes = [Document(f"note:{i:03d}", "", f"Note {i}: a short remark about {TOPICS[i % len(TOPICS)]} number {i}.",
                      "text", {"team": "red" if i in RED else "blue", "n": i}) for i in range(240)]
    with KnowledgeBase(Settings(home=home, schema="filters")) as kb:
        kb.ingest_documents(notes)
        kb.create_index(kind="hnsw")
        yield kb


def exact_red(kb, vector, k):
    """The k red chunks nearest `vector`, computed here from the stored embeddings."""
    with kb.connection() as conn:
        rows = conn.execute(f"SELECT d.source, c.embedding FROM {kb.schema}.chunks c "
                            f"JOIN {kb.schema}.documents d ON d.id = c.document_id "
                            "WHERE d.metadata @> '{\"team\": \"red\"}'").fetchall()
    sims = {source: float(np.dot(embedding.to_numpy(), vector)) for source, embedding in rows}
    return sorted(sims, key=sims.get, reverse=True)[:k]


def take_the_index(conn):
    """On a small table with a selective filter the planner rightly prefers exact search; make it
    take the HNSW index, as it does on large tables."""
    conn.execute("SET enable_seqscan = off")
    conn.execute("SET enable_sort = off")


def filtered_index_scan(conn, schema, vector, k):
    """What an index scan with the filter applied afterwards returns, without pgask's remedies."""
    return conn.execute(
        f"SELECT c.id FROM {schema}.chunks c JOIN {schema}.documents d ON d.id = c.document_id "
        "WHERE d.metadata @> '{\"team\": \"red\"}' ORDER BY c.embedding <=> %s LIMIT %s", (vector, k)).fetchall()


def test_selective_filter_returns_k_through_an_hnsw_index(indexed):
    kb = indexed
    vector = kb.embedder.embed_query("a remark about gardening")
    with kb.connection() as conn:
        take_the_index(conn)
        conn.execute("SET hnsw.iterative_scan = off")
        assert len(filtered_index_scan(conn, kb.schema, vector, 5)) < 5  # the problem being solved
        conn.execute("RESET hnsw.iterative_scan")
        for mode in ("vector", "hybrid"):
            hits = searching.search(conn, kb.schema, "a remark about gardening", vector, mode=mode, k=5,
                                    filter={"team": "red"})
            assert len(hits) == 5
            assert {h.source for h in hits} <= {f"note:{i:03d}" for i in RED}
        exact = searching.search(conn, kb.schema, "", vector, mode="vector", k=5, filter={"team": "red"})
        plan = "\n".join(r[0] for r in conn.execute(
            f"EXPLAIN SELECT id FROM {kb.schema}.chunks ORDER BY embedding <=> %s LIMIT 5", (vector,)))
        conn.rollback()
    assert "hnsw" in plan
    assert [h.source for h in exact] == exact_red(kb, vector, 5)


def test_exact_search_when_the_index_scan_stops_early(indexed):
    kb = indexed
    vector = kb.embedder.embed_query("a remark about chess")
    with kb.connection() as conn:
        take_the_index(conn)
        conn.execute("SET hnsw.max_scan_tuples = 20")  # iterative scans give up long before 5 red rows
        conn.execute("SET hnsw.iterative_scan = relaxed_order")
        assert len(filtered_index_scan(conn, kb.schema, vector, 5)) < 5
        hits = searching.search(conn, kb.schema, "", vector, mode="vector", k=5, filter={"team": "red"})
        conn.rollback()
    assert [h.source for h in hits] == exact_red(kb, vector, 5)


def test_filter_by_number_and_source_prefix_in_every_mode(indexed):
    kb = indexed
    for mode in ("vector", "keyword", "hybrid"):
        assert [h.source for h in kb.search("remark about baking", k=3, mode=mode, filter={"n": 42})] == ["note:042"]
        hits = kb.search("remark about baking", k=20, mode=mode, source="note:1")
        assert len(hits) == 20 and all(h.source.startswith("note:1") for h in hits)
        assert kb.search("remark about baking", k=3, mode=mode, filter={"team": "green"}) == []


def test_filter_with_fewer_matches_than_k_returns_them_all(indexed):
    hits = indexed.search("astronomy", k=50, mode="vector", filter={"team": "red"})
    assert sorted(h.source for h in hits) == sorted(f"note:{i:03d}" for i in RED)


def test_a_relative_source_prefix_is_read_from_the_current_folder_by_every_front_end(kb, corpus, monkeypatch):
    """The UI hands its "Only sources starting with" field to the knowledge base as typed."""
    kb.ingest([corpus])
    monkeypatch.chdir(corpus.parent)
    relative = corpus.name + "/guides/"
    hits = kb.search("oiling a bike chain", k=5, source=relative)
    assert hits and all(h.source.startswith(str(corpus / "guides") + "/") for h in hits)
    answer = kb.ask("How do I oil a bicycle chain?", source=relative)
    assert answer.sources and all("/guides/" in s.source for s in answer.sources)
