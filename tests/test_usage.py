"""The usage ledger, `pgask usage`, the cost of an answer, budgets and the query cache, against
local HTTP servers that speak the OpenAI embeddings and chat protocols."""

import json

import pytest

from pgask.errors import PgaskError
from pgask.kb import KnowledgeBase
from pgask.usage import Prices

from .openai_server import sse_chat
from .helpers import KEY, ledger, remote_kb, short_sections, stored

PRICES = """
[models."text-embedding-3-small"]
input = 1000.0

[models."test-model"]
input = 2.0
output = 8.0
"""


@pytest.fixture
def prices(tmp_path):
    path = tmp_path / "prices.toml"
    path.write_text(PRICES)
    return path


def test_the_packaged_prices_are_extended_by_the_users_file(prices):
    assert Prices.load().cost("text-embedding-3-small", 1_000_000) == pytest.approx(0.02)
    assert Prices.load().cost("some-local-model", 1_000_000) == 0
    custom = Prices.load(prices)
    assert custom.cost("text-embedding-3-small", 1000) == pytest.approx(1.0)
    assert custom.cost("test-model", 1_000_000, 1_000_000) == pytest.approx(10.0)
    assert custom.cost("gpt-4o-mini", 1_000_000) == pytest.approx(0.15)  # the packaged entries remain


def test_a_bad_prices_file_is_one_clear_error(run, tmp_path, corpus):
    bad = tmp_path / "bad.toml"
    bad.write_text('[models."x"]\ninput = "cheap"\n')
    result = run("ingest", str(corpus), env={"PGASK_PRICES_FILE": str(bad)})
    assert result.exit_code == 1 and "bad entry for 'x'" in result.stderr
    result = run("ingest", str(corpus), env={"PGASK_PRICES_FILE": str(tmp_path / "missing.toml")})
    assert result.exit_code == 1 and "cannot read the prices file" in result.stderr


def test_ask_json_carries_the_tokens_and_cost_of_the_answer(run, serve, httpserver, corpus, prices):
    api = serve(1536)
    httpserver.expect_request("/v1/chat/completions").respond_with_response(sse_chat(["Deeply [1]."], usage=(120, 30)))
    env = {"PGASK_EMBED_MODEL": "openai:text-embedding-3-small", "PGASK_EMBED_BASE_URL": api.url,
           "PGASK_EMBED_API_KEY": KEY, "PGASK_LLM_BASE_URL": httpserver.url_for("/v1"),
           "PGASK_LLM_MODEL": "test-model", "PGASK_PRICES_FILE": str(prices)}
    assert run("ingest", str(corpus), env=env).exit_code == 0
    result = run("ask", "How often should tomato plants be watered?", "--json", env=env)
    assert result.exit_code == 0, result.output
    usage = json.loads(result.stdout)["usage"]
    query_tokens = api.answered[-1]["prompt_tokens"]
    assert [(c["kind"], c["cached"]) for c in usage["calls"]] == [("embed_query", False), ("chat", False)]
    assert (usage["tokens_in"], usage["tokens_out"]) == (query_tokens + 120, 30)
    assert usage["cost_usd"] == pytest.approx(query_tokens * 1000 / 1e6 + 120 * 2 / 1e6 + 30 * 8 / 1e6)

    again = json.loads(run("ask", "How often should tomato plants be watered?", "--json", env=env).stdout)["usage"]
    assert [(c["kind"], c["cached"]) for c in again["calls"]] == [("embed_query", True), ("chat", False)]
    assert again["tokens_in"] == 120

    summary = json.loads(run("usage", "--json", env=env).stdout)
    by_kind = {g["kind"]: g for g in summary["groups"]}
    assert by_kind["chat"]["calls"] == 2 and by_kind["chat"]["tokens_out"] == 60
    assert (by_kind["embed_query"]["calls"], by_kind["embed_query"]["cached"]) == (2, 1)
    assert by_kind["embed_query"]["tokens_in"] == query_tokens
    assert by_kind["embed_documents"]["tokens_in"] == sum(r["prompt_tokens"] for r in api.answered[:-1])
    assert summary["total"]["cost_usd"] == pytest.approx(sum(g["cost_usd"] for g in summary["groups"]))


def test_usage_human_output_and_since(run, serve, corpus):
    api = serve(1536)
    env = {"PGASK_EMBED_MODEL": "openai:text-embedding-3-small", "PGASK_EMBED_BASE_URL": api.url,
           "OPENAI_API_KEY": KEY}
    assert run("ingest", str(corpus), env=env).exit_code == 0
    result = run("usage", env=env)
    assert result.exit_code == 0, result.output
    assert "embed_documents" in result.stdout and "text-embedding-3-small" in result.stdout
    assert f"{api.reported_tokens():,}" in result.stdout and "total" in result.stdout
    later = run("usage", "--since", "2999-01-01", "--json", env=env)
    assert json.loads(later.stdout) == {"since": "2999-01-01", "groups": [],
                                        "total": {"calls": 0, "cached": 0, "tokens_in": 0, "tokens_out": 0,
                                                  "cost_usd": 0}}
    assert "no model calls recorded since 2999-01-01" in run("usage", "--since", "2999-01-01", env=env).stdout
    assert run("usage", "--since", "yesterday").exit_code == 2


def test_a_local_model_records_nothing_and_answers_cost_nothing(run, corpus):
    assert run("ingest", str(corpus)).exit_code == 0
    answer = json.loads(run("ask", "How often should tomato plants be watered?", "--json").stdout)
    assert answer["mode"] == "extractive"
    assert answer["usage"] == {"tokens_in": 0, "tokens_out": 0, "cost_usd": 0, "calls": []}
    assert json.loads(run("usage", "--json").stdout)["total"]["calls"] == 0


def test_the_query_cache_makes_no_second_call_in_any_process(settings, serve, corpus):
    api = serve(1536)
    with remote_kb(settings, api) as kb:
        kb.ingest([corpus])
        before = len(api.requests)
        first = kb.search("oiling a bicycle chain", k=2)
        assert len(api.requests) == before + 1
    with remote_kb(settings, api) as kb:  # a new knowledge base object: as a new process would be
        second = kb.search("oiling a bicycle chain", k=2)
        kb.search("Oiling a bicycle chain", k=2)  # another text is another call
        rows = [row for row in ledger(kb) if row[0] == "embed_query"]
    assert len(api.requests) == before + 2
    assert [(h.chunk_id, round(h.similarity, 5)) for h in first] == [(h.chunk_id, round(h.similarity, 5)) for h in second]
    assert [cached for _, _, cached in rows] == [False, True, False]
    assert [tokens for _, tokens, _ in rows][1] == 0


def test_a_budget_stop_leaves_a_consistent_database_and_says_what_remains(run, serve, settings, tmp_path, prices):
    api = serve(1536)
    corpus = short_sections(tmp_path / "budget", docs=10, sections=1)
    env = {"PGASK_EMBED_MODEL": "openai:text-embedding-3-small", "PGASK_EMBED_BASE_URL": api.url,
           "OPENAI_API_KEY": KEY, "PGASK_PRICES_FILE": str(prices), "PGASK_EMBED_BATCH_SIZE": "4",
           "PGASK_EMBED_CONCURRENCY": "1"}
    # at $1,000 per million tokens each ~20-token document costs ~$0.02: one batch of 4 fits in $0.1, two do not
    result = run("ingest", str(corpus), "--max-cost", "0.1", "--json", env=env)
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["budget"]["exhausted"] is True and report["budget"]["max_cost_usd"] == 0.1
    assert 0 < report["cost_usd"] <= 0.1 and report["budget"]["spent_usd"] == pytest.approx(report["cost_usd"])
    assert "budget reached" in result.stderr and f"{len(report['remaining'])} documents not ingested" in result.stderr

    with remote_kb(settings, api) as kb:  # the CLI's knowledge base: cli_env and settings share the schema
        rows = stored(kb)
        sources = {r[0] for r in rows}
        assert len(rows) == report["added"] and 0 < report["added"] < 10
        assert all(r[1] == r[2] == 1 for r in rows)  # each stored document whole
        assert sources.isdisjoint(report["remaining"])
        assert len(sources) + len(report["remaining"]) == 10
        assert sum(r[1] for r in ledger(kb)) * 1000 / 1e6 == pytest.approx(report["cost_usd"])

    rest = json.loads(run("ingest", str(corpus), "--json", env=env).stdout)
    assert (rest["added"], rest["unchanged"], rest["remaining"], rest["budget"]) == (
        len(report["remaining"]), report["added"], [], None)


def test_a_budget_from_the_environment_and_a_zero_budget_send_nothing(settings, serve, corpus, prices):
    api = serve(1536)
    with remote_kb(settings, api, max_cost_usd=0.0, prices_file=prices) as kb:
        report = kb.ingest([corpus])
        assert report.added == 0 and len(report.remaining) == 4 and report.budget["exhausted"]
        assert kb.status().documents == 0
    assert api.requests == []
    with remote_kb(settings, api) as kb, pytest.raises(PgaskError, match="zero or more dollars"):
        kb.ingest([corpus], max_cost_usd=-1)


def test_a_knowledge_base_built_before_the_query_cache_gets_one_when_opened(kb, settings, corpus):
    kb.ingest([corpus])
    with kb.connection() as conn:
        conn.execute(f"DROP TABLE {kb.schema}.query_cache")
        conn.commit()
    with KnowledgeBase(settings) as again:
        assert again.search("oiling a bicycle chain", k=1)[0].source.endswith("bicycle.html")
        with again.connection() as conn:
            assert conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{kb.schema}.query_cache",)).fetchone()[0]
