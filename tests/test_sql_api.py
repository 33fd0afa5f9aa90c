"""The SQL API in the database: match_documents and its variants against pgask search, the ANN
index behind them, `pgask sql --install` / `--print`, and the psql acceptance command."""

import csv
import io
import json
import shutil
import subprocess

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from pgask.cli import app

from .helpers import write


needs_psql = pytest.mark.skipif(shutil.which("psql") is None, reason="needs the psql client (.ci/run installs postgresql-client-15)")

FUNCTIONS = {"cosine": "match_documents", "l2": "match_documents_l2", "ip": "match_documents_ip"}


@pytest.fixture
def loaded(kb, corpus):
    kb.ingest([corpus])
    return kb


def match(kb, metric, vector, threshold, count):
    query = sql.SQL("SELECT id, content, similarity, source, heading FROM {}.{}(%s, %s, %s)").format(
        sql.Identifier(kb.schema), sql.Identifier(FUNCTIONS[metric]))
    with kb.connection() as conn:
        return conn.execute(query, (vector, threshold, count)).fetchall()


def test_match_documents_returns_the_rows_of_pgask_search(loaded):
    question = "what should I use to oil a bike chain"
    vector = loaded.embedder.embed_query(question)
    for metric in FUNCTIONS:
        for threshold in (0.0, 0.3):
            hits = loaded.search(question, k=5, metric=metric, threshold=threshold)
            rows = match(loaded, metric, vector, threshold, 5)
            expected = [(h.chunk_id, h.content, h.source, h.heading) for h in hits]
            assert [(r[0], r[1], r[3], r[4]) for r in rows] == expected, (metric, threshold)
            assert [r[2] for r in rows] == pytest.approx([h.similarity for h in hits], abs=1e-5)
            assert rows[0][3].endswith("bicycle.html")
    # the threshold filters the nearest match_count rows
    # (cut between the similarities the rows have: the model's backend moves them by ~0.01)
    unrelated = loaded.embedder.embed_query("quantum chromodynamics lattice gauge theory")
    nearest = match(loaded, "cosine", unrelated, -1.0, 3)
    assert len(nearest) == 3
    between = (nearest[1][2] + nearest[2][2]) / 2
    assert match(loaded, "cosine", unrelated, between, 3) == nearest[:2]
    assert match(loaded, "cosine", unrelated, 0.6, 3) == []


def hnsw_scans(conn, kb) -> int:
    conn.execute("SELECT pg_stat_clear_snapshot()")
    return conn.execute("SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_user_indexes "
                        "WHERE schemaname = %s AND indexrelname = 'chunks_embedding_hnsw_cosine_idx'",
                        (kb.schema,)).fetchone()[0]


def test_the_ann_index_serves_match_documents(loaded):
    loaded.create_index(kind="hnsw", metric="cosine")
    schema = sql.Identifier(loaded.schema)
    with psycopg.connect(loaded.url, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")  # a tiny table: make the planner show it can use the index
        # The function is PL/pgSQL (Citus cannot plan inlined SQL functions over distributed
        # tables): EXPLAIN shows only a Function Scan, so count the index's scans while the body runs,
        # for a plain argument and for a subquery argument (the README's acceptance command).
        vector = str(loaded.embedder.embed_query("bike chain").tolist()).replace(" ", "")
        before = hnsw_scans(conn, loaded)
        rows = conn.execute(sql.SQL("SELECT * FROM {}.match_documents(%s::vector, 0.0, 3)").format(schema), (vector,))
        assert len(rows.fetchall()) == 3
        rows = conn.execute(sql.SQL(
            "SELECT * FROM {s}.match_documents((SELECT embedding FROM {s}.chunks LIMIT 1), 0.0, 3)").format(s=schema))
        assert len(rows.fetchall()) == 3
        conn.execute("SELECT pg_stat_force_next_flush()")
        assert hnsw_scans(conn, loaded) == before + 2


@pytest.fixture
def run(cli_env):
    runner = CliRunner()
    return lambda *args, **env: runner.invoke(app, list(args), env={**cli_env, **env})


@needs_psql
def test_psql_acceptance_command(run, tmp_path):
    # one topic in several sections, so that three chunks lie within 0.5 of any one of them
    write(tmp_path / "tomatoes.md", """
        # Growing tomatoes

        ## Watering
        Water tomato plants deeply at the base two or three times a week.

        ## Watering in hot weather
        In a heat wave, water tomato plants every morning so that the soil stays evenly moist.

        ## Watering seedlings
        Tomato seedlings need gentle watering whenever the top of the soil feels dry.

        ## Watering in pots
        Tomatoes grown in pots dry out fast: water them daily and check the drainage holes.
        """)
    assert run("ingest", str(tmp_path / "tomatoes.md")).exit_code == 0
    status = json.loads(run("status", "--json").stdout)
    schema = status["schema"]
    query = f"select * from {schema}.match_documents((select embedding from {schema}.chunks limit 1), 0.5, 3)"
    result = subprocess.run(["psql", status["database_url"], "-X", "--csv", "-c", query],
                            capture_output=True, text=True, check=True)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 3
    assert list(rows[0]) == ["id", "content", "similarity", "source", "heading"]
    assert float(rows[0]["similarity"]) == pytest.approx(1.0, abs=1e-6)
    assert float(rows[1]["similarity"]) < 1.0


def test_sql_install_reports_what_it_installed(run):
    result = run("sql", "--install", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["engine"] == "postgres"
    assert {"match_documents", "match_documents_ip", "match_documents_l2", "vector_search", "keyword_search",
            "hybrid_search"} <= set(info["functions"])
    # the embedded server has no PL/Python: said clearly, and the rest is installed
    assert info["plpython"] is False
    assert "plpython3u is not available on this server" in info["notes"][0]
    human = run("sql", "--install")
    assert human.exit_code == 0 and ".match_documents_l2" in human.stdout
    assert "plpython3u is not available" in human.stderr


@pytest.fixture
def fresh_database(kb):
    """An empty database on the embedded server, for scripts that must build everything themselves."""
    name = f"fresh_{kb.schema}"
    with psycopg.connect(kb.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield psycopg.conninfo.make_conninfo(kb.url, dbname=name)
    with psycopg.connect(kb.url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@needs_psql
def test_printed_script_installs_everything_through_psql(run, fresh_database, corpus):
    printed = run("sql", "--print", "--engine", "postgres")
    assert printed.exit_code == 0, printed.output
    assert printed.stdout.lstrip().startswith("--") and "BEGIN;" in printed.stdout
    for _ in range(2):  # the script can be applied again
        psql = subprocess.run(["psql", fresh_database, "-X", "-q", "-v", "ON_ERROR_STOP=1"],
                              input=printed.stdout, capture_output=True, text=True)
        assert psql.returncode == 0, psql.stderr
        assert "ERROR" not in psql.stderr and "plpython3u is not available" in psql.stderr
    # the database it built is a knowledge base pgask uses as it is
    ingested = run("ingest", str(corpus), "--json", PGASK_DATABASE_URL=fresh_database)
    assert ingested.exit_code == 0, ingested.output
    assert json.loads(ingested.stdout)["added"] == 4
    status = json.loads(run("status", "--json", PGASK_DATABASE_URL=fresh_database).stdout)
    assert status["documents"] == 4


def test_print_detects_the_engine_and_json_carries_the_script(run):
    result = run("sql", "--print", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert "for postgres" in data["script"].splitlines()[0]
    assert "create_distributed_table" not in data["script"]


def test_sql_usage_errors(run):
    assert run("sql").exit_code == 2
    assert run("sql", "--install", "--print").exit_code == 2
    assert run("sql", "--install", "--engine", "citus").exit_code == 2
    bad = run("sql", "--print", "--engine", "oracle")
    assert bad.exit_code == 1 and "unknown engine 'oracle'" in bad.stderr
