"""Keyword (BM25) and hybrid search, in SQL and through KnowledgeBase; the BM25 statistics."""

import math

import numpy as np
import pytest
from psycopg.types.json import Jsonb

from pgask.config import Settings
from pgask.db import store
from pgask.errors import PgaskError
from pgask.ingest.loaders import Document
from pgask.kb import KnowledgeBase

SUPPORT_NOTES = {
    "display": "Error codes on the display explained: what each error message on the control panel means "
               "and how to clear it.",
    "reset": "If the appliance shows an error, switch it off, wait a minute, and switch it on again to reset it.",
    "manual": "The user manual lists every fault and warning code together with its meaning.",
    "hinge": "Replacement parts: the left door hinge bracket is sold as part ZX-4471 in packs of two.",
    "filter": "Clean the drain filter once a month to keep water flowing freely.",
    "noise": "A loud grinding noise usually means a foreign object is caught in the pump.",
}


def notes(kb: KnowledgeBase, texts: dict[str, str], **metadata) -> None:
    kb.ingest_documents(Document(f"note:{name}", "", text, "text", dict(metadata)) for name, text in texts.items())


@pytest.fixture
def support(kb):
    notes(kb, SUPPORT_NOTES)
    return kb


def names(hits):
    return [h.source.removeprefix("note:") for h in hits]


def test_keyword_search_finds_an_exact_rare_term_that_vector_search_misses(support):
    question = "what is error code ZX-4471"
    vector = names(support.search(question, k=3, mode="vector"))
    keyword = names(support.search(question, k=3, mode="keyword"))
    assert "hinge" not in vector  # the model hears "error code", not the part number
    assert keyword[0] == "hinge"
    assert names(support.search(question, k=3, mode="hybrid"))[:3].count("hinge") == 1


def test_every_mode_reports_cosine_similarity_and_its_own_score(support):
    question = "how do I reset the appliance after an error"
    by_mode = {mode: support.search(question, k=2, mode=mode) for mode in ("vector", "keyword", "hybrid")}
    vector_best = by_mode["vector"][0]
    assert vector_best.score == pytest.approx(vector_best.similarity)
    similarity = {h.chunk_id: h.similarity for hits in by_mode.values() for h in hits}
    for hits in by_mode.values():
        for hit in hits:
            assert hit.similarity == pytest.approx(similarity[hit.chunk_id])
    assert by_mode["hybrid"][0].score < 2 / 61 + 1e-12  # reciprocal rank fusion of two ranks >= 1


def test_hybrid_order_is_reciprocal_rank_fusion_of_the_two_rankings(support):
    question = "error message on the display panel"
    depth = len(SUPPORT_NOTES)
    vector = [h.chunk_id for h in support.search(question, k=depth, mode="vector")]
    keyword = [h.chunk_id for h in support.search(question, k=depth, mode="keyword")]
    assert 0 < len(keyword) < depth  # some notes share no word with the question

    def rrf(chunk):
        return sum(1 / (60 + ranking.index(chunk) + 1) for ranking in (vector, keyword) if chunk in ranking)

    document = {h.chunk_id: h.document_id for h in support.search(question, k=depth, mode="vector")}
    hybrid = support.search(question, k=depth, mode="hybrid")
    assert [h.chunk_id for h in hybrid] == sorted(vector, key=lambda c: (-rrf(c), document[c], c))
    assert [h.score for h in hybrid] == pytest.approx([rrf(h.chunk_id) for h in hybrid])


def test_fusion_on_constructed_rankings(kb):
    """Vectors placed by hand: by meaning Y, X, W, Z; by keywords Z, X. Fused: X, Z, Y, W."""
    kb.init()
    axis = np.eye(kb.embedder.dim, dtype=np.float32)
    placed = {"X": (0.8, "alpha"), "Y": (0.9, "beta"), "Z": (0.1, "alpha alpha alpha"), "W": (0.5, "gamma")}
    with kb.connection() as conn:
        store.replace_documents(conn, kb.schema, [
            store.StoredDocument(source=name, title="", content_hash=name, metadata={}, chunks=[
                store.StoredChunk(0, "", text, len(text.split()), cosine * axis[0] + math.sqrt(1 - cosine**2) * axis[1])])
            for name, (cosine, text) in placed.items()])
    by = {mode: kb.search("alpha", k=4, mode=mode, embedding=axis[0]) for mode in ("vector", "keyword", "hybrid")}
    assert [h.source for h in by["vector"]] == ["Y", "X", "W", "Z"]
    assert [h.source for h in by["keyword"]] == ["Z", "X"]
    assert [h.source for h in by["hybrid"]] == ["X", "Z", "Y", "W"]
    assert [h.score for h in by["hybrid"]] == pytest.approx([2 / 62, 1 / 61 + 1 / 64, 1 / 61, 1 / 63])
    assert [h.similarity for h in by["hybrid"]] == pytest.approx([0.8, 0.1, 0.9, 0.5], abs=1e-6)


def test_fusion_weights_in_sql(support):
    question = "error code on the display"
    vector = support.embedder.embed_query(question)
    with support.connection() as conn:
        def ranking(**weights):
            rows = conn.execute(
                f"SELECT source, vector_rank, keyword_rank FROM {support.schema}.hybrid_search("
                "%(q)s, %(v)s, 6, full_text_weight => %(ft)s, semantic_weight => %(sw)s)",
                {"q": question, "v": vector, **weights}).fetchall()
            return rows

        only_keywords = ranking(ft=1.0, sw=0.0)
        only_vectors = ranking(ft=0.0, sw=1.0)
    matched = [r for r in only_keywords if r[2] is not None]
    assert [r[2] for r in matched] == list(range(1, len(matched) + 1))
    assert [r[1] for r in only_vectors] == list(range(1, 7))


def test_bm25_scores_match_the_formula(home, schema):
    settings = Settings(home=home, schema=schema, text_search_config="simple")
    with KnowledgeBase(settings) as kb:
        notes(kb, {"a": "apple banana apple", "b": "banana cherry", "c": "cherry date elderberry fig"})
        hits = {h.source: h.score for h in kb.search("apple cherry", k=5, mode="keyword")}
    n, avgdl, k1, b = 3, (3 + 2 + 4) / 3, 1.2, 0.75

    def idf(df):
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def term(tf, length):
        return tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avgdl))

    assert hits == pytest.approx({
        "note:a": idf(1) * term(2, 3),
        "note:b": idf(2) * term(1, 2),
        "note:c": idf(2) * term(1, 4),
    })


def recounted(kb):
    """The keyword statistics, and the same counted afresh from the chunks."""
    s = kb.schema
    with kb.connection() as conn:
        kept = (conn.execute(f"SELECT chunks, lexemes FROM {s}.keyword_stats").fetchone(),
                dict(conn.execute(f"SELECT lexeme, chunks FROM {s}.keyword_terms").fetchall()))
        fresh = (conn.execute(f"SELECT count(*), (SELECT coalesce(sum(cardinality(t.positions)), 0) "
                              f"FROM {s}.chunks c, unnest(c.fts) t) FROM {s}.chunks").fetchone(),
                 dict(conn.execute(f"SELECT t.lexeme, count(*) FROM {s}.chunks c, unnest(c.fts) t "
                                   "GROUP BY t.lexeme").fetchall()))
    return kept, fresh


def test_keyword_statistics_stay_exact_through_ingest_change_delete_and_sql(kb, corpus):
    kb.ingest([corpus])
    kept, fresh = recounted(kb)
    assert kept == fresh and kept[0][0] > 4 and "tomato" in kept[1]

    (corpus / "notes.txt").write_text("Rye sourdough ferments faster than wheat.\n")
    (corpus / "garden.md").unlink()
    kb.ingest([corpus], prune=True)
    kept, fresh = recounted(kb)
    assert kept == fresh and "tomato" not in kept[1] and "rye" in kept[1]

    with kb.connection() as conn:
        conn.execute(f"UPDATE {kb.schema}.chunks SET content = 'zeppelin hangar' WHERE ordinal = 0")
        conn.commit()
    kept, fresh = recounted(kb)
    assert kept == fresh and "zeppelin" in kept[1]

    with kb.connection() as conn:
        conn.execute(f"TRUNCATE {kb.schema}.chunks")
        conn.commit()
    assert recounted(kb) == (((0, 0), {}), ((0, 0), {}))


def test_upgrade_adds_keyword_statistics_to_an_older_knowledge_base(kb, corpus):
    kb.ingest([corpus])
    s = kb.schema
    with kb.connection() as conn:  # what a knowledge base of schema version 1 looked like
        conn.execute(f"DROP TABLE {s}.keyword_terms, {s}.keyword_stats")
        conn.execute(f"DROP FUNCTION {s}.hybrid_search, {s}.keyword_search, {s}.vector_search")
        conn.execute(f"DROP FUNCTION {s}.keyword_stats_add, {s}.keyword_stats_remove, {s}.keyword_stats_clear CASCADE")
        conn.execute(f"DROP FUNCTION {s}.lexeme_occurrences CASCADE")  # and the column chunks.fts_length
        conn.execute(f"UPDATE {s}.settings SET value = %s WHERE key = 'schema_version'", (Jsonb(1),))
        conn.commit()
    with KnowledgeBase(kb.settings) as again:
        assert again.search("watering tomatoes", k=1, mode="hybrid")[0].source.endswith("garden.md")
        kept, fresh = recounted(again)
    assert kept == fresh


def test_search_functions_read_one_snapshot_and_older_ones_are_replaced(kb, corpus):
    """A VOLATILE search function takes a new snapshot per statement: the chunks it ranks and the
    rows it then fetches could straddle an ingest's commit (seen in CI as a document with a chunk
    missing). STABLE functions read the calling query's snapshot throughout."""
    kb.ingest([corpus])
    s = kb.schema
    volatility = f"""SELECT p.proname, p.provolatile FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                     WHERE n.nspname = '{s}' AND p.proname LIKE '%%_search' ORDER BY 1"""
    stable = [("hybrid_search", "s"), ("keyword_search", "s"), ("vector_search", "s")]
    with kb.connection() as conn:
        assert conn.execute(volatility).fetchall() == stable
        conn.execute(f"ALTER FUNCTION {s}.vector_search VOLATILE")  # as schema version 2 made it
        conn.execute(f"UPDATE {s}.settings SET value = %s WHERE key = 'schema_version'", (Jsonb(2),))
        conn.commit()
    with KnowledgeBase(kb.settings) as again:
        assert again.search("watering tomatoes", k=1, mode="vector")[0].source.endswith("garden.md")
        with again.connection() as conn:
            assert conn.execute(volatility).fetchall() == stable


def test_stop_words_only_and_bad_mode(support):
    assert support.search("the of and", k=3, mode="keyword") == []
    assert len(support.search("the of and", k=3, mode="hybrid")) == 3  # the vector ranking alone
    with pytest.raises(PgaskError, match="unknown search mode 'fuzzy'"):
        support.search("x", mode="fuzzy")
