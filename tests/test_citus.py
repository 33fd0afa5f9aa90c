"""Everything a user does, on a real Citus 13 cluster (a coordinator and two workers, tests/citus_cluster.py):
init and ingest (documents and chunks distributed by document and co-located, settings a reference
table), re-ingest and prune, every search mode with filters and source prefixes (the same top 10
as a single node), ANN indexes on the shards, the SQL API from psql, the printed install script,
status, the HTTP API, searches during an ingest, and an ingest killed mid-way then rerun."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from pgask.api import create_app
from pgask.cli import app
from pgask.config import Settings
from pgask.ingest.table_rows import TableSpec
from pgask.kb import KnowledgeBase

from .helpers import (
    ROUNDS, SMALL_BATCHES, as_schema_version_4, assert_matches_table, count_documents, crash_corpus, execute, ingest_while_searching,
    make_source, snapshot, wait_for_backends_to_end, write)

needs_psql = pytest.mark.skipif(shutil.which("psql") is None, reason="needs the psql client (.ci/run installs postgresql-client-15)")

TEAMS = ("red", "blue", "green")
TOPICS = {
    "garden": "Water tomato plants deeply at the base of the stem; lettuce needs light frequent watering.",
    "bicycle": "Clean the bicycle chain with a degreaser, dry it, then oil every roller and wipe the excess.",
    "bread": "Feed the sourdough starter daily with flour and water; bake once it doubles in six hours.",
    "moon": "Observe the moon a few days after new moon, when shadows reveal craters along the terminator.",
    "database": "Vacuum reclaims dead rows; an index on the join column speeds up the planner's nested loop.",
    "sailing": "Reef the mainsail early when the wind rises, and keep the jib sheet ready to ease.",
}


def make_corpus(root: Path) -> Path:
    """36 Markdown files in three folders, two sections each, with a team in the front matter."""
    rng = random.Random(11)
    names = list(TOPICS)
    for i in range(36):
        topic, other = names[i % len(names)], names[(i * 5 + 1) % len(names)]
        folder = ("alpha", "beta", "gamma")[i % 3]
        write(root / folder / f"note{i:02d}.md", f"""
            ---
            team: {TEAMS[i % len(TEAMS)]}
            ---

            # Note {i} on {topic}

            ## About {topic}

            {TOPICS[topic]} Remark {rng.randint(1, 999)} for note {i}.

            ## Also {other}

            {TOPICS[other]} A second remark, number {rng.randint(1, 999)}.
            """)
    return root


def citus_settings(home: Path, url: str, schema: str = "kb") -> Settings:
    return Settings(home=home, database_url=url, schema=schema)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("citus-corpus"))


@pytest.fixture(scope="module")
def loaded(citus_cluster, home, corpus_dir):
    """The corpus ingested once into a Citus database of this module's own, for the tests that only read."""
    url = citus_cluster.create_database("citus_loaded")
    with KnowledgeBase(citus_settings(home, url)) as kb:
        report = kb.ingest([corpus_dir])
        assert report.added == 36 and report.failed == []
        yield kb
    citus_cluster.drop_database("citus_loaded")


@pytest.fixture(scope="module")
def single(home, corpus_dir):
    """The same corpus on a single node (the embedded PostgreSQL)."""
    with KnowledgeBase(Settings(home=home, schema="m_citus_single")) as kb:
        kb.init(reset=True)
        kb.ingest([corpus_dir])
        yield kb


@pytest.fixture
def run(cli_env, citus_url):
    runner = CliRunner()
    env = {**cli_env, "PGASK_DATABASE_URL": citus_url, "PGASK_SCHEMA": "kb"}

    def invoke(*args, **extra):
        return runner.invoke(app, [str(a) for a in args], env={**env, **extra})

    return invoke


def test_ingest_distributes_documents_and_chunks_by_document(run, corpus_dir, citus_url):
    ingested = run("ingest", corpus_dir, "--json")
    assert ingested.exit_code == 0, ingested.output
    report = json.loads(ingested.stdout)
    assert (report["added"], report["failed"]) == (36, []) and report["chunks"] >= 72

    status = run("status", "--json")
    assert status.exit_code == 0, status.output
    info = json.loads(status.stdout)
    assert info["engine"] == "citus" and info["workers"] == 2
    assert (info["documents"], info["chunks"]) == (36, report["chunks"])
    tables = info["distribution"]
    assert tables["documents"]["type"] == "distributed" and tables["documents"]["column"] == "id"
    assert tables["chunks"]["type"] == "distributed" and tables["chunks"]["column"] == "document_id"
    assert tables["chunks"]["colocation_id"] == tables["documents"]["colocation_id"]
    assert tables["chunks"]["shards"] == tables["documents"]["shards"] > 2
    assert {tables[t]["type"] for t in ("settings", "usage", "query_cache")} == {"reference"}
    text = run("status")
    assert text.exit_code == 0 and "citus" in text.stdout and "workers" in text.stdout and "8 shards" in text.stdout

    with psycopg.connect(citus_url) as conn:
        # the chunks live on the workers, each with its document on the same node
        placed = conn.execute(
            "SELECT count(DISTINCT nodeport) FROM citus_shards WHERE table_name = 'kb.chunks'::regclass "
            "AND shard_size >= 0").fetchone()[0]
        assert placed == 2
        apart = conn.execute(
            "SELECT count(*) FROM kb.chunks c JOIN kb.documents d ON d.id = c.document_id").fetchone()[0]
        assert apart == report["chunks"]


def test_reingest_one_changed_file_and_prune(run, corpus_dir, tmp_path):
    corpus = shutil.copytree(corpus_dir, tmp_path / "corpus")
    assert run("ingest", corpus, "--json").exit_code == 0
    changed = corpus / "beta" / "note01.md"
    changed.write_text(changed.read_text() + "\n## Added later\n\nA new paragraph about reefing sails at dusk.\n")
    (corpus / "gamma" / "note02.md").unlink()

    again = run("ingest", corpus, "--json")
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    # the deleted file is neither unchanged nor deleted until --prune
    assert (report["added"], report["updated"], report["unchanged"], report["deleted"]) == (0, 1, 34, 0)

    pruned = run("ingest", corpus, "--prune", "--json")
    assert pruned.exit_code == 0, pruned.output
    report = json.loads(pruned.stdout)
    assert (report["updated"], report["unchanged"], report["deleted"]) == (0, 35, 1)
    found = json.loads(run("search", "reefing sails at dusk", "--json", "-k", "1", "--mode", "vector").stdout)
    assert found["results"][0]["source"].endswith("beta/note01.md")
    status = json.loads(run("status", "--json").stdout)
    assert status["documents"] == 35


QUESTIONS = ["how do I oil a bicycle chain", "watering tomatoes", "sourdough starter flour", "vacuum dead rows index"]


def top10(kb, question, **options):
    return [(h.source, h.chunk_id) for h in kb.search(question, k=10, **options)]


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_every_search_mode_returns_the_single_node_top_10(loaded, single, corpus_dir, mode):
    beta = str(corpus_dir / "beta")
    compared = 0
    for question in QUESTIONS:
        for options in ({}, {"filter": {"team": "red"}}, {"source": beta}, {"filter": {"team": "blue"}, "source": beta}):
            expected = top10(single, question, mode=mode, **options)
            assert top10(loaded, question, mode=mode, **options) == expected, (question, options)
            compared += len(expected) == 10
    assert compared >= 6  # full top 10s compared (keyword search finds fewer for most filtered questions)


def test_search_through_the_cli_with_a_filter(loaded, cli_env, corpus_dir):
    env = {**cli_env, "PGASK_DATABASE_URL": loaded.url, "PGASK_SCHEMA": loaded.schema}
    result = CliRunner().invoke(app, ["search", "bicycle chain", "--json", "-k", "3", "--filter", "team=green"], env=env)
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)["results"]
    assert len(hits) == 3 and all(h["metadata"]["team"] == "green" for h in hits)


def shard_plans(conn, query: str, params=()) -> list[str]:
    """EXPLAIN of a query with every shard's task shown; index scans are made the planner's choice
    on every worker (these shards are small enough that it would read them whole)."""
    conn.execute("SET LOCAL citus.propagate_set_commands = 'local'")
    conn.execute("SET LOCAL enable_seqscan = off")
    conn.execute("SET LOCAL citus.explain_all_tasks = on")
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + query, params))
    return plan.split("->  Task")[1:]


@pytest.mark.parametrize("kind", ["hnsw", "ivfflat"])
def test_index_is_built_on_every_shard_and_serves_the_search(run, corpus_dir, citus_url, kind):
    assert run("ingest", corpus_dir).exit_code == 0
    built = run("index", "--type", kind, "--json")
    assert built.exit_code == 0, built.output
    status = json.loads(run("status", "--json").stdout)
    assert [(i["type"], i["metric"]) for i in status["indexes"]] == [(kind, "cosine")]
    with psycopg.connect(citus_url) as conn, conn.transaction():
        # a literal: Citus 13 sends an EXPLAIN's parameters to the workers without their types
        vector = conn.execute("SELECT embedding::text FROM kb.chunks LIMIT 1").fetchone()[0]
        tasks = shard_plans(conn, f"SELECT id FROM kb.chunks ORDER BY embedding <=> '{vector}'::vector LIMIT 10")
        shards = conn.execute("SELECT count(*) FROM citus_shards WHERE table_name = 'kb.chunks'::regclass").fetchone()[0]
    assert len(tasks) == shards
    assert all(f"Index Scan using chunks_embedding_{kind}_cosine_idx_" in task for task in tasks), tasks[0]
    found = run("search", "oil the bicycle chain", "--json", "-k", "5", "--mode", "vector")
    assert found.exit_code == 0, found.output
    assert "bicycle" in json.loads(found.stdout)["results"][0]["content"]


def test_search_settings_reach_the_workers(loaded):
    """ef_search, probes and iterative scans are set on the workers that run the shard queries."""
    from pgask.db.schema import render

    with loaded.connection() as conn, conn.transaction():
        conn.execute(render("search_settings.sql", loaded.schema),
                     {"depth": 100, "ef_search": None, "default_ef_search": 40, "probes": 7, "default_probes": 10,
                      "exact": False, "metric": "cosine", "filtered": True})
        seen = conn.execute(
            "SELECT DISTINCT inet_server_port(), current_setting('hnsw.ef_search'), current_setting('ivfflat.probes'), "
            f"current_setting('hnsw.iterative_scan') FROM {loaded.schema}.chunks").fetchall()
    ports = {port for port, *_ in seen}
    assert len(ports) == 2 and {tuple(s[1:]) for s in seen} == {("100", "7", "relaxed_order")}


@needs_psql
def test_sql_functions_from_psql(loaded, single):
    vector_of = f"(SELECT embedding FROM {loaded.schema}.chunks c JOIN {loaded.schema}.documents d ON d.id = c.document_id " \
                "WHERE d.source LIKE '%alpha/note00.md' ORDER BY c.ordinal LIMIT 1)"
    rows = {}
    for function in ("match_documents", "match_documents_l2", "match_documents_ip"):
        out = psql(loaded.url, f"SELECT id, round(similarity::numeric, 4) FROM {loaded.schema}.{function}({vector_of}, 0.2, 5)")
        rows[function] = out
        assert len(out) == 5
    assert rows["match_documents"] == rows["match_documents_l2"] == rows["match_documents_ip"]
    assert float(rows["match_documents"][0][1]) == pytest.approx(1.0, abs=1e-4)
    single_vector = vector_of.replace(loaded.schema + ".", single.schema + ".")
    with single.connection() as conn:
        expected = conn.execute(f"SELECT id FROM {single.schema}.match_documents({single_vector}, 0.2, 5)").fetchall()
    assert [r[0] for r in rows["match_documents"]] == [str(r[0]) for r in expected]

    hybrid = psql(loaded.url, f"SELECT source, vector_rank, keyword_rank FROM {loaded.schema}.hybrid_search("
                              f"'clean the chain with a degreaser', {vector_of}, 5, filter => '{{\"team\": \"red\"}}')")
    assert len(hybrid) == 5 and all(r[0].endswith(".md") for r in hybrid)

    # the names a question writes as code that no chunk on any worker contains
    missing = psql(loaded.url, f"SELECT {loaded.schema}.unmentioned_terms(ARRAY['degreaser', 'pg_stat_statements'])")
    assert missing == [["{pg_stat_statements}"]]


def psql(url: str, query: str) -> list[list[str]]:
    done = subprocess.run(["psql", url, "-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", query],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [line.split("\t") for line in done.stdout.splitlines() if line]


@needs_psql
def test_printed_citus_script_applies_with_psql_on_a_fresh_database(run, citus_url, corpus_dir):
    printed = run("sql", "--print", "--engine", "citus")
    assert printed.exit_code == 0, printed.output
    assert "create_distributed_table" in printed.stdout
    for _ in range(2):  # the script can be applied again
        done = subprocess.run(["psql", citus_url, "-X", "-q", "-v", "ON_ERROR_STOP=1"], input=printed.stdout,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "ERROR" not in done.stderr
    ingested = run("ingest", corpus_dir, "--json")
    assert ingested.exit_code == 0, ingested.output
    assert json.loads(ingested.stdout)["added"] == 36
    info = json.loads(run("status", "--json").stdout)
    assert info["distribution"]["chunks"]["type"] == "distributed"


def test_serve_search_and_ask(loaded):
    client = TestClient(create_app(loaded))
    found = client.post("/v1/search", json={"query": "how do I oil a bicycle chain", "k": 3, "filter": {"team": "red"}})
    assert found.status_code == 200, found.text
    results = found.json()["results"]
    assert len(results) == 3 and all(r["metadata"]["team"] == "red" for r in results)
    answered = client.post("/v1/ask", json={"question": "How do I clean a bicycle chain?"})
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert body["mode"] == "extractive" and "[1]" in body["answer"]
    assert "bicycle" in body["sources"][0]["content"].lower()
    assert client.get("/healthz").json()["status"] == "ok"


def test_searches_during_an_ingest_see_each_document_whole(citus_url, home, tmp_path):
    with KnowledgeBase(citus_settings(home, citus_url)) as kb:
        problems, seen, searches = ingest_while_searching(kb, tmp_path / "corpus")
    assert problems == []
    assert searches >= ROUNDS and len(seen["stable0"]) >= 2


def test_sigkill_mid_ingest_then_rerun_equals_clean_ingest(citus_url, home, tmp_path):
    corpus = crash_corpus(tmp_path)
    with KnowledgeBase(citus_settings(home, citus_url, "clean")) as clean:
        clean.ingest([corpus])
        expected = snapshot(clean)
    with KnowledgeBase(citus_settings(home, citus_url, "killed")) as kb:
        kb.init()
        env = {**os.environ, "PGASK_HOME": str(home), "PGASK_SCHEMA": "killed", "PGASK_DATABASE_URL": citus_url,
               "PGAPPNAME": "pgask-killed"}
        proc = subprocess.Popen([sys.executable, "-c", SMALL_BATCHES, "ingest", str(corpus), "--json"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 180
        while proc.poll() is None and count_documents(kb) < 13 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, f"ingest finished before the kill point: {proc.communicate()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        wait_for_backends_to_end(kb, "pgask-killed")
        docs, chunks, orphans, short = snapshot(kb)
        assert 0 < len(docs) < len(expected[0])
        assert orphans == 0 and short == 0
        report = kb.ingest([corpus])
        assert report.failed == [] and report.unchanged == len(docs)
        assert snapshot(kb) == expected


def test_table_source_distributed_ingest_and_sync(citus_url, home):
    """`ingest --table` of a distributed table on the cluster itself, then `sync` after changes."""
    table = make_source(citus_url, "src", 30)
    execute(citus_url, f"SELECT create_distributed_table('{table}', 'id')")
    with KnowledgeBase(citus_settings(home, citus_url)) as kb:
        first = kb.ingest_table(table, id_column="id", text_columns=["body"], title_column="subject")
        assert first.report.added == 30 and first.report.failed == []
        execute(citus_url,
                       f"UPDATE {table} SET body = 'The projector bulb exploded with a bang during the board meeting.' "
                       "WHERE id = 5",
                       f"INSERT INTO {table} (id, subject, body, status) VALUES (61, 'Chair', 'The office chair wobbles.', 'open')",
                       f"DELETE FROM {table} WHERE id = 7")
        synced, = kb.sync()
        assert synced.mode == "read"
        assert (synced.report.added, synced.report.updated, synced.report.deleted) == (1, 1, 1)
        assert kb.search("lamp blew up in a meeting", k=1)[0].table_row == f"{table} #5"
        assert_matches_table(kb, TableSpec(table, "id", ("body",), "subject"))


def test_watching_a_table_on_citus_is_refused_with_what_to_do_instead(citus_url, home):
    """Citus has no statement triggers with transition tables, which --watch's queue is fed by."""
    from pgask.errors import PgaskError

    table = make_source(citus_url, "src", 12)
    execute(citus_url, f"SELECT create_distributed_table('{table}', 'id')")
    with KnowledgeBase(citus_settings(home, citus_url)) as kb:
        with pytest.raises(PgaskError, match=r"--watch needs statement triggers .* run `pgask sync` instead"):
            kb.ingest_table(table, id_column="id", text_columns=["body"], watch=True)
        assert kb.status().table_sources == []  # nothing half set up


def test_an_earlier_knowledge_base_gets_korean_keywords_on_citus(citus_url, home, tmp_path):
    """Schema version 5's upgrade (keyword_upgrade.sql) re-creates the distributed chunks' fts with
    chunks.keywords, on every shard, leaving the stored values as they were."""
    pytest.importorskip("kiwipiepy", reason="Korean keywords need pgask[korean]")
    write(tmp_path / "en.md", "# Distribution keys\n\nChange a table's distribution key with ALTER TABLE.\n")
    write(tmp_path / "ko.md", "# 분산 정책\n\n분산 키를 바꾸려면 테이블을 다시 만들어야 합니다.\n")
    settings = citus_settings(home, citus_url)
    with KnowledgeBase(settings) as kb:
        kb.ingest([tmp_path / "en.md"])
        with kb.connection() as conn:
            before = as_schema_version_4(conn, kb.schema)
    with KnowledgeBase(settings) as kb:
        with kb.connection() as conn:
            assert conn.execute("SELECT count(*), sum(fts_length) FROM kb.chunks").fetchone() == before
        assert kb.search("distribution key", k=1, mode="keyword")[0].source.endswith("en.md")
        kb.ingest([tmp_path / "ko.md"])
        assert kb.search("테이블의 분산키는 어떻게 바꾸나요?", k=1, mode="keyword")[0].source.endswith("ko.md")
