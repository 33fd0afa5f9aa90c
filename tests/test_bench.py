"""`pgask bench` on a tiny corpus with tiny sizes: every number present and sane, user data untouched."""

import json

from typer.testing import CliRunner

from pgask.cli import app
from pgask.embed.backends import BACKENDS

KEYS = {"backend", "encode_chunks_per_s", "ingest_chunks_per_s", "ingest_to_encode_ratio", "search_p50_ms",
        "search_p95_ms", "hybrid_p50_ms", "hybrid_p95_ms", "recall_at_10", "copy_rows_per_s", "peak_rss_mb",
        "cold_status_s", "cold_search_s"}


def test_bench_json_on_a_tiny_corpus_leaves_the_users_knowledge_base_alone(cli_env, corpus, tmp_path):
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(corpus)], env=cli_env).exit_code == 0
    before = json.loads(runner.invoke(app, ["status", "--json"], env=cli_env).stdout)
    queries = tmp_path / "queries.txt"
    queries.write_text("watering tomatoes\n\nbicycle chain oil\nlunar craters\n")

    result = runner.invoke(app, ["bench", "--corpus", str(corpus), "--queries", str(queries),
                                 "--synthetic-rows", "3000", "--json"], env=cli_env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert KEYS <= set(data)
    assert data["backend"] in BACKENDS
    assert data["documents"] == 4 and data["chunks"] >= 4 and data["queries"] == 3
    for key in ("encode_chunks_per_s", "ingest_chunks_per_s", "ingest_to_encode_ratio", "copy_rows_per_s",
                "peak_rss_mb", "hnsw_build_s", "synthetic_hnsw_build_s", "cold_status_s", "cold_search_s"):
        assert data[key] > 0, key
    assert data["ingest_to_encode_ratio"] == round(data["ingest_chunks_per_s"] / data["encode_chunks_per_s"], 3)
    assert 0 < data["search_p50_ms"] <= data["search_p95_ms"]
    assert 0 < data["hybrid_p50_ms"] <= data["hybrid_p95_ms"]
    assert data["recall_at_10"] == 1.0  # a handful of chunks: HNSW finds them all
    assert data["synthetic_rows"] == 3000
    assert data["peak_rss_mb"] >= data["ingest_peak_rss_mb"] > 50

    after = json.loads(runner.invoke(app, ["status", "--json"], env=cli_env).stdout)
    assert (after["documents"], after["chunks"]) == (before["documents"], before["chunks"])
    for schema in ("pgask_bench", "pgask_bench_copy"):  # dropped after the run
        status = json.loads(runner.invoke(app, ["status", "--json"], env={**cli_env, "PGASK_SCHEMA": schema}).stdout)
        assert status["documents"] == 0 and status["chunks"] == 0


def test_bench_human_output_names_the_machine_and_the_ratio(cli_env, corpus):
    result = CliRunner().invoke(app, ["bench", "--corpus", str(corpus), "--synthetic-rows", "0",
                                      "--query-count", "3"], env=cli_env)
    assert result.exit_code == 0, result.output
    assert "cores" in result.stdout and "× encode" in result.stdout and "recall@10" in result.stdout
    assert "cold start" in result.stdout and "median of 3" in result.stdout
    assert "COPY" not in result.stdout  # --synthetic-rows 0 skips the bulk load


def test_bench_refuses_a_missing_corpus_and_an_empty_queries_file(cli_env, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["bench", "--corpus", str(tmp_path / "nope")], env=cli_env)
    assert result.exit_code == 1 and "no such corpus" in result.output
    empty = tmp_path / "q.txt"
    empty.write_text("\n\n")
    result = runner.invoke(app, ["bench", "--corpus", str(tmp_path), "--queries", str(empty)], env=cli_env)
    assert result.exit_code == 1 and "has no queries" in result.output
