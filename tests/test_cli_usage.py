"""A newcomer's first commands: --help reads as plain flags and choices, usage mistakes exit 2 naming
what is allowed, messages count in words, `pgask stop` stops the embedded server."""

import json
import re

import pytest

from pgask import __version__
from pgask.config import MAX_K

from .helpers import write


COMMANDS = ["init", "ingest", "sync", "search", "ask", "chat", "index", "status", "stop", "usage", "sql", "serve",
            "ui", "bench", "eval"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_flags_and_values_not_type_names(run, command):
    result = run(command, "--help")
    assert result.exit_code == 0, result.output
    text = result.stdout
    # no Python type or click range names in angle brackets: <bool>, <list[Path]>, <float range> ...
    assert not re.search(r"<(bool|int|float|str|text|path|list|integer|boolean)[^>]*>", text, re.I), text
    assert "RANGE" not in text and "BOOLEAN" not in text, text
    if command != "stop":
        assert run(command, "-h").stdout == text  # -h is --help


def test_help_lists_the_choices_and_the_k_option(run):
    search = run("search", "--help").stdout
    for value in ("vector", "keyword", "hybrid", "cosine", "l2", "ip"):
        assert value in search
    assert re.search(r"--top-k\s+-k\b", search) and f"1 to {MAX_K}" in search
    assert "--k " not in search and "--k," not in search  # the old spelling works, unadvertised
    assert "--json" in search and "--no-json" not in search
    index = run("index", "--help").stdout
    assert "hnsw" in index and "ivfflat" in index
    assert re.search(r"--top-k\s+-k\b", run("ask", "--help").stdout)


def test_version_and_top_level_help(run):
    result = run("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"pgask {__version__}"
    top = run("-h")
    assert top.exit_code == 0 and "stop" in top.stdout and "search" in top.stdout


@pytest.mark.parametrize("args, allowed", [
    (["search", "x", "--mode", "fuzzy"], ["vector", "keyword", "hybrid"]),
    (["ask", "x", "--mode", "fuzzy"], ["vector", "keyword", "hybrid"]),
    (["search", "x", "--metric", "manhattan"], ["cosine", "l2", "ip"]),
    (["index", "--type", "btree"], ["hnsw", "ivfflat"]),
    (["search", "x", "--threshold", "1.5"], ["-1", "1"]),
    (["ask", "x", "--threshold", "-2"], ["-1", "1"]),
    (["search", "x", "-k", str(MAX_K + 1)], ["1", str(MAX_K)]),
    (["ask", "x", "--top-k", "0"], ["1", str(MAX_K)]),
])
def test_usage_mistakes_exit_2_with_the_allowed_values(run, args, allowed):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for value in allowed:
        assert value in result.stderr


def test_the_k_limit_is_the_same_for_search_ask_and_http():
    from pgask.api import AskRequest, SearchRequest

    assert SearchRequest.model_fields["k"].metadata[-1].le == MAX_K
    assert any(getattr(m, "le", None) == MAX_K for m in AskRequest.model_fields["k"].metadata)


def test_old_k_spelling_still_works(run, corpus):
    assert run("ingest", str(corpus)).exit_code == 0
    for flag in ("-k", "--top-k", "--k"):
        result = run("search", "bicycle chain", flag, "2", "--json")
        assert result.exit_code == 0, result.output
        assert len(json.loads(result.stdout)["results"]) == 2


def test_counts_are_words_a_failed_file_is_named_once_and_an_empty_filter_is_named(run, tmp_path):
    docs = tmp_path / "docs"
    write(docs / "one.md", "# One\n\nA single page about watering tomatoes.\n")
    (docs / "notes.xyz").write_text("not a document type pgask reads")
    (docs / "broken.md").write_bytes(b"\x00\x01binary\xff" * 20)
    result = run("ingest", str(docs))
    assert result.exit_code == 1  # a file failed
    assert "1 added" in result.stdout and "· 1 chunk in" in result.stdout
    assert "skipped 1 file of unsupported types" in result.stdout
    failed = [line for line in result.stderr.splitlines() if "failed:" in line]
    assert len(failed) == 1 and failed[0].count("broken.md") == 1, failed

    nothing = run("ingest", str(docs), "--include", "*.rst")
    assert nothing.exit_code == 1
    assert "no documents found" in nothing.stderr and "--include '*.rst'" in nothing.stderr

    none = run("search", "tomatoes", "--filter", "format=pdf")
    assert none.exit_code == 0 and "no matching passages in documents with format=pdf" in none.stdout


@pytest.mark.parametrize("url", ["postgres//nohost", "postgresql://[::1/docs", "postgresql://al ice:pw@db/docs"])
def test_an_unparseable_database_url_shows_the_expected_form_and_the_variable(run, url):
    result = run("status", env={"PGASK_DATABASE_URL": url})
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "postgresql://USER:PASSWORD@HOST:5432/DATABASE" in lines[0] and "PGASK_DATABASE_URL" in lines[0]


def test_stop_stops_the_embedded_server_and_the_next_command_starts_it(run, tmp_path):
    from pgask.db.embedded import embedded_running

    home = tmp_path / "home"
    env = {"PGASK_HOME": str(home)}
    assert run("status", env=env).exit_code == 0
    assert embedded_running(home)
    stopped = run("stop", env=env)
    assert stopped.exit_code == 0, stopped.output
    assert "stopped the embedded Postgres" in stopped.stdout and not embedded_running(home)
    again = run("stop", "--json", env=env)
    assert again.exit_code == 0 and json.loads(again.stdout) == {
        "stopped": False, "running": False, "pgdata": str(home / "pgdata")}
    assert run("status", env=env).exit_code == 0 and embedded_running(home)  # started again on demand
    assert run("stop", env=env).exit_code == 0 and not embedded_running(home)


def test_stop_with_an_external_database_stops_nothing(run):
    result = run("stop", env={"PGASK_DATABASE_URL": "postgresql://alice:pw@db.example.com/docs"})
    assert result.exit_code == 0
    assert "nothing to stop" in result.stdout and "pw@" not in result.stdout


def test_ingest_progress_without_a_terminal_is_plain_lines_after_the_model_line(run, corpus):
    result = run("ingest", str(corpus))
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    model = next(i for i, line in enumerate(lines) if "embedding model" in line or "embedding backend" in line)
    last = next(i for i, line in enumerate(lines) if line.startswith("ingest: 4/4 documents · "))
    assert model < last  # the model is loaded (and said to be) before the count
    assert not any("\x1b[" in line or "━" in line for line in lines)  # no bar drawn into a log
    rerun = run("ingest", str(corpus))  # nothing to embed: no model to load, no progress lines
    assert "embedding model" not in rerun.stderr and "ingest:" not in rerun.stderr
