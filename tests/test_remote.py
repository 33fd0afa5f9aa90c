"""Remote embeddings against a local HTTP server that speaks the OpenAI embeddings protocol:
batching, retries, dimensions, storage types, model switches and keys."""

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from pgask.cli import app
from pgask.config import Secret
from pgask.embed.counting import Cl100k
from pgask.embed.remote import RemoteEmbedder, plan_batches
from pgask.errors import ModelMismatch, PgaskError
from pgask.ingest.chunking import chunk_document
from pgask.ingest.loaders import Document
from pgask.kb import KnowledgeBase

from .helpers import KEY, ledger, remote_kb, short_sections, stored


def column_type(kb) -> str:
    with kb.connection() as conn:
        return conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                            "WHERE attrelid = to_regclass(%s) AND attname = 'embedding'",
                            (f"{kb.schema}.chunks",)).fetchone()[0]


def test_a_1536_dimension_model_creates_a_1536_dimension_table_of_unit_vectors(settings, serve, corpus):
    api = serve(1536)
    with remote_kb(settings, api) as kb:
        report = kb.ingest([corpus])
        assert report.added == 4 and report.failed == []
        assert column_type(kb) == "vector(1536)"
        rows = stored(kb)
        assert [r[1] for r in rows] == [r[2] for r in rows]  # every document stored whole
        assert {r[3] for r in rows} == {1536}
        assert all(abs(low - 1) < 1e-5 and abs(high - 1) < 1e-5 for *_, low, high in rows)  # server sent 2.5
        # the served vectors keep the real model's geometry, so search still finds the right passage
        assert kb.search("oiling a bicycle chain", k=1)[0].source.endswith("bicycle.html")
        assert kb.status().dim == 1536
    assert all(r["authorization"] == f"Bearer {KEY}" for r in api.requests)
    assert all("dimensions" not in r["body"] for r in api.requests)


def test_requests_respect_the_item_count_and_the_token_budget_and_the_ledger_holds_what_the_server_reported(
        settings, serve, tmp_path):
    api = serve(384)
    corpus = short_sections(tmp_path / "short", docs=4, sections=4)
    # a self-hosted model: its tokens are counted with WordPiece, the server adds [CLS] and [SEP]
    with remote_kb(settings, api, model="acme/embedder-small", embed_dimensions=384,
                   embed_batch_size=3, embed_batch_tokens=40) as kb:
        report = kb.ingest([corpus])
        assert report.chunks == 16
        rows = ledger(kb)
    answered = api.answered
    assert sum(len(r["body"]["input"]) for r in answered) == 16
    assert all(len(r["body"]["input"]) <= 3 for r in answered)
    client_tokens = [r["prompt_tokens"] - 2 * len(r["body"]["input"]) for r in answered]
    assert all(t <= 40 for t, r in zip(client_tokens, answered) if len(r["body"]["input"]) > 1)
    # the token budget, not the item count, closed some requests
    assert any(len(r["body"]["input"]) < 3 for r in answered[:-1])
    assert sorted(t for kind, t, _ in rows) == sorted(r["prompt_tokens"] for r in answered)
    assert report.tokens == api.reported_tokens()


def test_acceptance_200_chunks_through_429s_in_the_fewest_requests(cli_env, serve, tmp_path):
    api = serve(1536, throttle=(2, 4), retry_after=1)
    corpus = short_sections(tmp_path / "corpus200", docs=50, sections=4)
    env = {**cli_env, "PGASK_EMBED_MODEL": "openai:text-embedding-3-small", "PGASK_EMBED_BASE_URL": api.url,
           "OPENAI_API_KEY": KEY, "PGASK_EMBED_BATCH_SIZE": "64"}
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", str(corpus), "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["chunks"] == 200 and report["added"] == 50

    throttled = [r for r in api.requests if r["throttled"]]
    assert len(throttled) == 2
    assert len(api.answered) == math.ceil(200 / 64)
    assert len(api.requests) <= math.ceil(200 / 64) + len(throttled)
    assert sum(len(r["body"]["input"]) for r in api.answered) == 200

    with KnowledgeBase(schema=cli_env["PGASK_SCHEMA"], home=cli_env["PGASK_HOME"], database_url=None,
                       embed_model="openai:text-embedding-3-small", embed_base_url=api.url) as kb:
        with kb.connection() as conn:
            count, dims = conn.execute(
                f"SELECT count(*), min(vector_dims(embedding)) FROM {kb.schema}.chunks").fetchone()
    assert (count, dims) == (200, 1536)

    usage = json.loads(runner.invoke(app, ["usage", "--json"], env=env).stdout)
    assert usage["total"]["tokens_in"] == api.reported_tokens() == report["tokens"]
    [group] = usage["groups"]
    assert (group["kind"], group["calls"], group["model"]) == ("embed_documents", 4, "text-embedding-3-small")


def test_a_wrong_dimension_is_refused_after_the_first_request_with_nothing_stored(settings, serve, corpus):
    api = serve(768)  # text-embedding-3-small is 1536-dimensional; this server is not
    with remote_kb(settings, api, embed_batch_size=2) as kb:
        with pytest.raises(PgaskError, match="768-dimensional vectors .* 1536 were expected; nothing was stored"):
            kb.ingest([corpus])
        assert kb.status().documents == 0
        assert len(ledger(kb)) == 1  # the one request answered is on the ledger
    assert len(api.requests) == 1


def test_the_dimensions_parameter_goes_to_text_embedding_3_models(settings, serve, corpus):
    api = serve(1536)
    with remote_kb(settings, api, embed_dimensions=256) as kb:
        kb.ingest([corpus])
        assert column_type(kb) == "vector(256)"
    assert {r["body"]["dimensions"] for r in api.requests} == {256}


def test_a_model_of_unknown_size_is_probed_once_per_knowledge_base(settings, serve, tmp_path):
    api = serve(512)
    corpus = short_sections(tmp_path / "c", docs=1, sections=2)
    with remote_kb(settings, api, model="acme/unknown-embedder") as kb:
        kb.ingest([corpus])
        assert column_type(kb) == "vector(512)"
        assert [kind for kind, *_ in ledger(kb)] == ["embed_probe", "embed_documents"]
    probes = len(api.requests)
    with remote_kb(settings, api, model="acme/unknown-embedder") as kb:  # knows the size from the database
        kb.search("looking after orchids")
    assert len(api.requests) == probes + 1


def test_vectors_above_2000_dimensions_are_halfvec_and_indexable(settings, serve, corpus):
    api = serve(3072)
    with remote_kb(settings, api, model="openai:text-embedding-3-large") as kb:
        kb.ingest([corpus])
        assert column_type(kb) == "halfvec(3072)"
        info = kb.create_index(kind="hnsw")
        assert kb.status().indexes == [{"name": info.name, "type": "hnsw", "metric": "cosine"}]
        assert kb.search("oiling a bicycle chain", k=1)[0].source.endswith("bicycle.html")
        query = kb.embedder.embed_query("oiling a bicycle chain")
        with kb.connection() as conn, conn.transaction():
            conn.execute("SET LOCAL enable_seqscan = off")
            plan = "\n".join(r[0] for r in conn.execute(
                f"EXPLAIN SELECT id FROM {kb.schema}.chunks ORDER BY embedding <=> %s LIMIT 3", (query,)))
            matched = conn.execute(f"SELECT source FROM {kb.schema}.match_documents(%s, 0.2, 1)", (query,)).fetchall()
        assert info.name in plan
        assert matched[0][0].endswith("bicycle.html")


def test_vectors_too_large_for_any_index_are_stored_and_index_says_why(settings, serve, tmp_path):
    api = serve(4096)
    corpus = short_sections(tmp_path / "c", docs=1, sections=1)
    with remote_kb(settings, api, model="acme/huge", embed_dimensions=4096) as kb:
        kb.ingest([corpus])
        assert column_type(kb) == "vector(4096)"
        with pytest.raises(PgaskError, match="at most 2000 dimensions and these vectors have 4096.*PGASK_EMBED_DIMENSIONS"):
            kb.create_index()
        assert len(kb.search("orchids", k=1)) == 1  # exact search still works


def test_switching_models_is_refused_with_instructions_and_no_request(cli_env, serve, settings, corpus):
    api = serve(1536)
    with remote_kb(settings, api) as kb:
        kb.ingest([corpus])
    sent = len(api.requests)
    runner = CliRunner()
    base = {**cli_env, "PGASK_SCHEMA": settings.schema, "PGASK_EMBED_BASE_URL": api.url, "OPENAI_API_KEY": KEY}
    for env, remedy in [
        ({"PGASK_EMBED_MODEL": "ollama:nomic-embed-text"}, "set PGASK_EMBED_MODEL=openai:text-embedding-3-small"),
        ({"PGASK_EMBED_MODEL": "acme/unknown-embedder"}, "set PGASK_EMBED_MODEL=openai:text-embedding-3-small"),
        ({"PGASK_EMBED_MODEL": "openai:text-embedding-3-small", "PGASK_EMBED_DIMENSIONS": "512"},
         "set PGASK_EMBED_DIMENSIONS=1536"),
    ]:
        result = runner.invoke(app, ["search", "bicycle chain"], env={**base, **env})
        assert result.exit_code == 1, result.output
        [line] = [line for line in result.stderr.splitlines() if line.strip()]
        assert "built with embedding model openai:text-embedding-3-small (1536 dimensions)" in line
        assert remedy in line and "pgask init --reset" in line
    assert len(api.requests) == sent
    with KnowledgeBase(settings, embed_model="ollama:nomic-embed-text", embed_base_url=api.url) as kb:
        with pytest.raises(ModelMismatch):
            kb.search("chain")


def test_keys_are_used_but_never_shown_or_stored(cli_env, serve, corpus, tmp_path):
    api = serve(1536)
    runner = CliRunner()
    env = {**cli_env, "PGASK_EMBED_MODEL": "openai:text-embedding-3-small", "PGASK_EMBED_BASE_URL": api.url,
           "OPENAI_API_KEY": KEY}
    outputs = [runner.invoke(app, args, env=env) for args in
               (["ingest", str(corpus)], ["search", "bicycle"], ["status", "--json"], ["status"], ["usage"])]
    assert all(r.exit_code == 0 for r in outputs), [r.output for r in outputs]
    assert not any(KEY in r.output for r in outputs)
    embedding = json.loads(outputs[2].stdout)["embedding"]
    assert embedding["provider"] == "openai" and embedding["key_variable"] == "OPENAI_API_KEY"
    assert embedding["api_key"] == Secret(KEY).masked()
    assert f"key OPENAI_API_KEY {Secret(KEY).masked()}" in outputs[3].stdout
    assert {r["authorization"] for r in api.requests} == {f"Bearer {KEY}"}
    with KnowledgeBase(schema=cli_env["PGASK_SCHEMA"], home=cli_env["PGASK_HOME"], embed_model="openai:text-embedding-3-small",
                       embed_base_url=api.url) as kb, kb.connection() as conn:
        for table in ("settings", "documents", "usage", "query_cache"):
            dump = conn.execute(f"SELECT coalesce(string_agg(t::text, ''), '') FROM {kb.schema}.{table} t").fetchone()[0]
            assert KEY not in dump

    (tmp_path / "pgask.toml").write_text(f'openai_api_key = "{KEY}"\n')
    result = runner.invoke(app, ["status"], env={**env, "PGASK_CONFIG": str(tmp_path / "pgask.toml")})
    assert result.exit_code == 1 and "set OPENAI_API_KEY instead" in result.stderr and KEY not in result.output


def test_openai_without_a_key_is_one_clear_error(settings, corpus):
    with KnowledgeBase(settings, embed_model="openai:text-embedding-3-small") as kb:
        assert kb.status().embedding["api_key"] is None
        with pytest.raises(PgaskError, match="OPENAI_API_KEY is not set: export it"):
            kb.ingest([corpus])


def test_ollama_needs_no_key_and_status_says_so(settings, serve, corpus):
    api = serve(768)
    with KnowledgeBase(settings, embed_model="ollama:nomic-embed-text", embed_base_url=api.url) as kb:
        kb.ingest([corpus])
        assert column_type(kb) == "vector(768)"
        embedding = kb.status().embedding
    assert (embedding["provider"], embedding["model"], embedding["api_key"]) == ("ollama", "nomic-embed-text", None)
    assert embedding["tokenizer"] == "bert-base-uncased"
    assert {r["body"]["model"] for r in api.requests} == {"nomic-embed-text"}


def test_rate_limits_bound_the_request_size_and_must_fit_one_input():
    embedder = RemoteEmbedder("openai:text-embedding-3-small", openai_api_key="k", tpm=20_000, rpm=100)
    assert (embedder.batch_tokens, embedder.tpm, embedder.rpm) == (20_000, 20_000, 100)
    with pytest.raises(PgaskError, match="PGASK_EMBED_TPM=1000 is less than one input"):
        RemoteEmbedder("openai:text-embedding-3-small", openai_api_key="k", tpm=1000)


def test_requests_within_rate_limits_go_through(settings, serve, corpus):
    api = serve(1536)
    with remote_kb(settings, api, embed_rpm=600, embed_tpm=200_000, embed_batch_size=2) as kb:
        report = kb.ingest([corpus])
    assert report.failed == [] and sum(len(r["body"]["input"]) for r in api.answered) == report.chunks


def test_plan_batches_closes_a_batch_at_the_item_count_or_the_token_budget():
    assert list(plan_batches([5, 5, 5, 5, 30, 1], 3, 12)) == [(0, 2), (2, 4), (4, 5), (5, 6)]
    assert list(plan_batches([1, 1, 1, 1], 3, 100)) == [(0, 3), (3, 4)]
    assert list(plan_batches([], 3, 100)) == []


def test_openai_token_offsets_let_the_chunker_cut_between_words():
    text = " ".join(f"Sentence {i} says that the pump needs priming before it is started again." for i in range(60))
    chunks = list(chunk_document(Document("s.txt", "", text, "text"), Cl100k().offsets,
                                 max_tokens=8191, chunk_tokens=50, overlap_tokens=8))
    assert len(chunks) > 5
    for chunk in chunks:
        at = text.index(chunk.content)
        assert at == 0 or text[at - 1] == " "
        assert at + len(chunk.content) == len(text) or text[at + len(chunk.content)] == " "
        assert chunk.content.endswith(".")  # the best break in reach is a sentence end
        assert chunk.token_count <= 50
    assert np.isclose(sum(Cl100k().counts([c.content for c in chunks])), sum(c.token_count for c in chunks), rtol=0.1)


def test_the_storage_type_keeps_vectors_indexable_where_pgvector_can():
    from pgask.db.schema import install_script, storage_type

    assert [storage_type(d, (0, 8, 5)) for d in (384, 2000, 2001, 4000, 4001)] == \
        ["vector", "vector", "halfvec", "halfvec", "vector"]
    assert storage_type(3072, (0, 6, 2)) == "vector"  # no halfvec before pgvector 0.7
    assert storage_type(3072) == "halfvec"  # a script for a server not seen assumes a current pgvector
    script = "".join(step.as_string(None) for step in
                     install_script("kb", engine="citus", model="m", dim=3072, ts_config="english", vector_type="halfvec"))
    assert "embedding   halfvec(3072) NOT NULL" in script and '"type": "halfvec"' in script
