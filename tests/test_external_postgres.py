"""The external-Postgres path (PGASK_DATABASE_URL) against a separate PostgreSQL 18 + pgvector server
that the tests start themselves: loopback TCP, password (SCRAM) authentication, driven through the CLI."""

import json

import pytest
from typer.testing import CliRunner

from pgask.cli import app

from .postgres_server import PASSWORD


@pytest.fixture
def server(postgres_server):
    return postgres_server


@pytest.fixture
def run(cli_env, server, tmp_path, kb):
    runner = CliRunner()
    # the embedded knowledge base's backend, so that both databases hold the same model's vectors
    env = {**cli_env, "PGASK_DATABASE_URL": server.url, "PGASK_HOME": str(tmp_path / "unused-home"),
           "PGASK_EMBED_BACKEND": kb.embedder.backend}

    def invoke(*args, **extra):
        return runner.invoke(app, list(args), env={**env, **extra})

    return invoke


def test_ingest_search_and_status_through_a_password_url(run, corpus, kb, tmp_path):
    ingested = run("ingest", str(corpus), "--json")
    assert ingested.exit_code == 0, ingested.output
    assert json.loads(ingested.stdout)["added"] == 4

    found = run("search", "what should I use to oil a bike chain", "--json", "-k", "5")
    assert found.exit_code == 0, found.output
    external = [(r["source"], r["heading"], r["chunk_id"]) for r in json.loads(found.stdout)["results"]]
    kb.ingest([corpus])  # the same corpus in the embedded database
    embedded = [(h.source, h.heading, h.chunk_id) for h in kb.search("what should I use to oil a bike chain", k=5)]
    # the same vectors (a passage's vector does not depend on what it was embedded with), the same ranking
    assert external == embedded
    assert external[0][0].endswith("bicycle.html")

    status = run("status", "--json")
    assert status.exit_code == 0, status.output
    info = json.loads(status.stdout)
    assert info["embedded"] is False and info["engine"] == "postgres"
    assert info["documents"] == 4 and "home" not in info
    assert PASSWORD not in status.stdout and info["database_url"].startswith("postgresql://postgres:***@127.0.0.1:")
    assert not (tmp_path / "unused-home" / "pgdata").exists()  # no embedded server was started (models may be cached)


def test_sql_install_on_the_external_server(run):
    result = run("sql", "--install", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert {"match_documents", "match_documents_l2", "match_documents_ip"} <= set(info["functions"])
    assert info["plpython"] is False and "plpython3u is not available" in info["notes"][0]


def test_wrong_password_is_one_line_and_masked(run, server):
    result = run("status", PGASK_DATABASE_URL=server.url.replace(PASSWORD, "wrong-pw-123"))
    assert result.exit_code == 1
    assert "password authentication failed" in result.stderr
    assert "wrong-pw-123" not in result.output and "***" in result.stderr
