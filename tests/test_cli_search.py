"""`pgask search` and `pgask ask` with --mode, --filter and --source, through Typer's runner."""

import json
import re

import pytest
from typer.testing import CliRunner

from pgask.cli import app


@pytest.fixture
def run(cli_env, corpus):
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, list(args), env=cli_env)

    assert invoke("ingest", str(corpus)).exit_code == 0
    return invoke


def sources(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [r["source"].rsplit("/", 1)[-1] for r in json.loads(result.stdout)["results"]]


def test_modes_filters_and_source_prefix(run, corpus, monkeypatch):
    for mode in ("vector", "keyword", "hybrid"):
        assert sources(run("search", "craters", "--mode", mode, "--filter", "format=pdf", "--json")) == ["astronomy.pdf"]
    # front matter lists match by JSON containment
    found = sources(run("search", "watering", "--filter", 'tags=["outdoor"]', "-k", "10", "--json"))
    assert found and set(found) == {"garden.md"}
    assert sources(run("search", "watering", "--filter", "tags=outdoor", "--json")) == []
    monkeypatch.chdir(corpus)  # a relative prefix is a path from the current folder
    assert set(sources(run("search", "brakes", "--source", "guides/", "-k", "10", "--json"))) == {"bicycle.html"}


def test_ask_with_keyword_mode_and_filter(run):
    result = run("ask", "How should I water tomato plants?", "--mode", "keyword", "--filter", "format=md", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["mode"] == "extractive" and {s["source"].rsplit("/", 1)[-1] for s in data["sources"]} == {"garden.md"}


def test_bad_mode_and_filter(run):
    result = run("search", "x", "--mode", "fuzzy")  # a usage mistake: exit 2, naming the modes there are
    assert result.exit_code == 2
    assert all(word in result.stderr for word in ("'fuzzy'", "'vector'", "'keyword'", "'hybrid'"))
    assert run("search", "x", "--filter", "novalue").exit_code == 2
    twice = run("search", "x", "--filter", "a=1", "--filter", "a=2")
    assert twice.exit_code == 2 and "JSON array" in twice.output
