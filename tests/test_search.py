import pytest

from pgask.errors import PgaskError
from pgask.indexes import ivfflat_lists


@pytest.fixture
def loaded(kb, corpus):
    kb.ingest([corpus])
    return kb


@pytest.mark.parametrize("question,source,heading", [
    ("How often should I irrigate my tomatoes?", "garden.md", "The Gardener's Handbook > Watering > Tomatoes"),
    ("what should I use to oil a bike chain", "bicycle.html", "Bicycle Maintenance > Chain care"),
    ("when is the best time to look at lunar craters", "astronomy.pdf", "Observing the Moon"),
    ("how do I keep my bread yeast culture alive", "notes.txt", "Sourdough starter notes"),
])
def test_paraphrased_question_finds_the_right_section(loaded, question, source, heading):
    # meaning alone: the paraphrases share few words with the passages (hybrid is tested in test_retrieval.py)
    best = loaded.search(question, k=3, mode="vector")[0]
    assert best.source.endswith(source)
    assert best.heading == heading


def test_three_metrics_agree_on_the_best_hit(loaded):
    results = {m: loaded.search("cleaning a bicycle chain", k=3, metric=m, threshold=0) for m in ("cosine", "l2", "ip")}
    best = {m: (hits[0].document_id, hits[0].chunk_id) for m, hits in results.items()}
    assert len(set(best.values())) == 1
    # every metric reports the same cosine similarity for unit vectors
    sims = [hits[0].similarity for hits in results.values()]
    assert max(sims) - min(sims) < 1e-4


def test_threshold_and_k(loaded):
    assert len(loaded.search("vegetables", k=2, threshold=0)) == 2
    assert loaded.search("quantum chromodynamics lattice gauge theory", k=5, threshold=0.5) == []


def test_unknown_metric_and_empty_query(loaded):
    with pytest.raises(PgaskError, match="unknown metric"):
        loaded.search("x", metric="hamming")
    with pytest.raises(PgaskError, match="empty"):
        loaded.search("   ")


def test_search_before_ingest_says_what_to_do(kb):
    with pytest.raises(PgaskError, match="pgask ingest"):
        kb.search("anything")


@pytest.mark.parametrize("kind,metric,operator", [("hnsw", "cosine", "<=>"), ("ivfflat", "l2", "<->"), ("hnsw", "ip", "<#>")])
def test_index_is_used_by_the_search_query(loaded, kind, metric, operator):
    info = loaded.create_index(kind=kind, metric=metric)
    assert info.type == kind and info.metric == metric
    vector = loaded.embedder.embed_query("chain")
    with loaded.connection() as conn:
        conn.execute("SET enable_seqscan = off")  # a tiny table: make the planner show it can use the index
        plan = "\n".join(r[0] for r in conn.execute(
            f"EXPLAIN SELECT id FROM {loaded.schema}.chunks ORDER BY embedding {operator} %s LIMIT 5", (vector,)))
    assert info.name in plan
    assert loaded.search("oil a bike chain", k=1, metric=metric)[0].source.endswith("bicycle.html")


def test_rebuilding_index_replaces_the_one_for_that_metric(loaded):
    loaded.create_index(kind="hnsw")
    loaded.create_index(kind="ivfflat", lists=2)
    indexes = loaded.status().indexes
    assert [(i["type"], i["metric"]) for i in indexes] == [("ivfflat", "cosine")]


def test_bulk_ingest_rebuilds_a_dropped_index(loaded, tmp_path):
    from pgask.indexes import BULK_REBUILD_DOCUMENTS

    loaded.create_index(kind="hnsw")
    folder = tmp_path / "bulk"
    folder.mkdir()
    for i in range(BULK_REBUILD_DOCUMENTS):
        (folder / f"n{i}.txt").write_text(f"Note number {i} about topic {i % 7}.\n")
    notes = []
    loaded.ingest([folder], notify=notes.append)
    assert any("dropping" in n for n in notes)
    assert [(i["type"], i["metric"]) for i in loaded.status().indexes] == [("hnsw", "cosine")]


def test_ivfflat_lists_rule():
    assert ivfflat_lists(10) == 1
    assert ivfflat_lists(250_000) == 250
    assert ivfflat_lists(1_000_000) == 1000
    assert ivfflat_lists(4_000_000) == 2000


def test_exact_search_agrees_with_hnsw_on_a_small_corpus(loaded):
    loaded.create_index(kind="hnsw")
    for q in ("watering tomatoes", "bicycle brakes", "moon craters"):
        ann = [h.chunk_id for h in loaded.search(q, k=3)]
        exact = [h.chunk_id for h in loaded.search(q, k=3, exact=True)]
        assert ann == exact


def test_index_build_reports_time_memory_and_records_search_parameters(loaded):
    info = loaded.create_index(kind="hnsw", m=8, ef_construction=32, ef_search=77)
    assert info.build_seconds >= 0 and info.memory_mb >= 64 and info.ef_search == 77
    assert loaded.status().search == {"cosine": {"ef_search": 77, "probes": None}}
    info = loaded.create_index(kind="ivfflat", metric="l2", probes=3)
    assert info.probes == 3 and info.lists >= 1
    assert loaded.status().search["l2"] == {"ef_search": None, "probes": 3}
    assert loaded.search("watering tomatoes", k=2, metric="l2")[0].source.endswith("garden.md")


def test_environment_overrides_the_recorded_search_parameters(settings, corpus):
    from pgask.kb import KnowledgeBase

    with KnowledgeBase(settings) as kb:
        kb.ingest([corpus])
        kb.create_index(kind="hnsw", ef_search=77)
    with KnowledgeBase(settings, hnsw_ef_search=12) as kb:
        assert kb.status().search["cosine"]["ef_search"] == 12
        ann = kb.search("watering tomatoes", k=3)
        assert [h.chunk_id for h in ann] == [h.chunk_id for h in kb.search("watering tomatoes", k=3, exact=True)]


def test_a_search_runs_with_the_parameters_in_force(loaded):
    """ef_search and probes as a search sets them: given, else recorded with the index, else the default."""
    from pgask.db.schema import render
    from pgask.search import DEFAULT_PROBES, default_ef_search

    def in_force(metric="cosine", depth=5, ef_search=None, probes=None):
        with loaded.connection() as conn, conn.transaction():
            conn.execute(render("search_settings.sql", loaded.schema),
                         {"depth": depth, "ef_search": ef_search, "default_ef_search": default_ef_search(depth),
                          "probes": probes, "default_probes": DEFAULT_PROBES, "exact": False, "metric": metric,
                          "filtered": False})
            return conn.execute("SELECT current_setting('hnsw.ef_search')::int, "
                                "current_setting('ivfflat.probes')::int").fetchone()

    assert in_force() == (40, DEFAULT_PROBES)  # nothing recorded
    loaded.create_index(kind="hnsw", ef_search=77)
    loaded.create_index(kind="ivfflat", metric="l2", probes=3)
    assert in_force() == (77, DEFAULT_PROBES)
    assert in_force("l2") == (40, 3)
    assert in_force(ef_search=12, probes=7) == (12, 7)  # the environment's
    assert in_force(depth=100) == (100, DEFAULT_PROBES)  # never fewer candidates than rows wanted
    assert in_force(ef_search=5000) == (1000, DEFAULT_PROBES)  # pgvector's ceiling


def test_build_memory_is_sized_to_the_index():
    from pgask.indexes import MAX_BUILD_MEMORY_MB, build_memory_mb

    assert build_memory_mb("hnsw", 1000, 384, 16) == 64  # the floor
    one_million = build_memory_mb("hnsw", 1_000_000, 384, 16)
    assert 1500 < one_million <= MAX_BUILD_MEMORY_MB  # vectors alone take 1465 MB
    assert build_memory_mb("hnsw", 100_000_000, 384, 16) == MAX_BUILD_MEMORY_MB
