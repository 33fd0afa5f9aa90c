"""Every command through Typer's runner, human and --json output, and the error contract."""

import json
import re

import pytest


from .openai_server import sse_chat


@pytest.fixture
def ingested(run, corpus):
    result = run("ingest", str(corpus), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_ingest_json(ingested):
    assert set(ingested) >= {"added", "updated", "unchanged", "deleted", "failed", "chunks", "seconds"}
    assert ingested["added"] == 4 and ingested["failed"] == []


def test_ingest_human_output_and_rerun(run, corpus, ingested):
    result = run("ingest", str(corpus))
    assert result.exit_code == 0
    assert "0 added, 0 updated, 4 unchanged" in result.stdout


def test_search_json_shape(run, ingested):
    result = run("search", "oiling a bicycle chain", "--json", "-k", "2")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["results"]) == 2
    first = data["results"][0]
    assert {"source", "heading", "content", "similarity", "document_id", "chunk_id"} <= set(first)
    assert first["source"].endswith("bicycle.html")


def test_search_human_output(run, ingested):
    result = run("search", "oiling a bicycle chain", "--metric", "l2")
    assert result.exit_code == 0
    assert re.search(r"^1\. 0\.\d{3,4}\s+\S*bicycle\.html", result.stdout, re.M)
    assert "Bicycle Maintenance > Chain care" in result.stdout


def test_ask_extractive_json(run, ingested):
    result = run("ask", "How often should tomato plants be watered?", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["mode"] == "extractive"
    assert re.search(r"\[\d\]", data["answer"])
    assert data["sources"][0]["n"] == 1


def test_ask_none_and_human_output(run, ingested):
    result = run("ask", "Who won the football world cup in 1966?", "--json")
    assert json.loads(result.stdout)["mode"] == "none"
    human = run("ask", "How often should tomato plants be watered?")
    assert "extractive answer" in human.stdout
    assert "Sources" in human.stdout and "[1]" in human.stdout


def test_ask_streams_llm_tokens(run, ingested, httpserver):
    httpserver.expect_request("/v1/chat/completions").respond_with_response(sse_chat(["Deeply, ", "twice weekly [1]."]))
    result = run("ask", "How often should tomato plants be watered?", env={"PGASK_LLM_BASE_URL": httpserver.url_for("/v1")})
    assert result.exit_code == 0, result.output
    assert "Deeply, twice weekly [1]." in result.stdout
    assert "Sources" in result.stdout


CONVERSATION = "How do I care for my bicycle chain?\nWhich product should I use for it?\n/new\nWhich product should I use for it?\n"


def test_chat_json_keeps_the_conversation_until_new(run, ingested):
    result = run("chat", "--json", input=CONVERSATION)
    assert result.exit_code == 0, result.output
    first, follow_up, fresh = json.loads(result.stdout)["turns"]
    assert first["sources"][0]["source"].endswith("bicycle.html")
    assert follow_up["standalone_question"] == "Which product should I use for it? (care bicycle chain)"
    assert "degreaser" in follow_up["answer"]
    assert fresh["standalone_question"] == fresh["question"] and fresh["mode"] == "none"


def test_chat_shows_the_rewritten_question_and_sources(run, ingested):
    result = run("chat", input=CONVERSATION + "\n   \n/quit\nnever asked\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("↪ searching for: Which product should I use for it? (care bicycle chain)") == 1
    assert "degreaser" in result.stdout and "bicycle.html › Bicycle Maintenance > Chain care" in result.stdout
    assert "The documents do not answer this question." in result.stdout
    assert "never asked" not in result.stdout and "new conversation" in result.stderr


def test_chat_reports_a_failing_turn_and_goes_on(run):
    result = run("chat", "--json", input="How often should tomato plants be watered?\n")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["turns"][0]["error"].startswith("the knowledge base is empty")
    assert "Error: the knowledge base is empty" in result.stderr


def test_serve_refuses_other_than_loopback_without_a_token(run):
    line = one_line_error(run("serve", "--host", "0.0.0.0", "--port", "8765", env={"PGASK_API_TOKEN": ""}))
    assert "refusing to listen on 0.0.0.0 without PGASK_API_TOKEN" in line


def test_index_and_status(run, ingested):
    result = run("index", "--type", "ivfflat", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["type"] == "ivfflat" and info["lists"] == 1
    result = run("index", "--type", "hnsw", "--m", "8")
    assert result.exit_code == 0 and "built hnsw index" in result.stdout

    status = json.loads(run("status", "--json").stdout)
    assert status["engine"] == "postgres"
    assert status["documents"] == 4 and status["chunks"] == ingested["chunks"]
    assert status["model"] == "sentence-transformers/all-MiniLM-L6-v2" and status["dim"] == 384
    assert status["pgvector_version"]
    assert [i["type"] for i in status["indexes"]] == ["hnsw"]
    human = run("status")
    assert "documents" in human.stdout and "hnsw (cosine)" in human.stdout


def test_init_reset(run, ingested):
    result = run("init", "--reset", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["documents"] == 0


def one_line_error(result, code=1):
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[0].startswith("Error:"), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_missing_path_is_one_line(run, tmp_path):
    assert "no such file" in one_line_error(run("ingest", str(tmp_path / "missing")))


def test_empty_folder_is_one_line(run, tmp_path):
    assert "no documents found" in one_line_error(run("ingest", str(tmp_path)))


def test_bad_file_fails_the_run_but_good_files_are_stored(run, corpus):
    (corpus / "fake.md").write_bytes(b"\x00\x01\x02binary\xff" * 50)
    result = run("ingest", str(corpus), "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["added"] == 4 and data["failed"][0]["source"].endswith("fake.md")
    assert "fake.md" in result.stderr and "binary data" in result.stderr


def test_wrong_database_url_is_one_line_with_masked_password(run):
    url = "postgresql://alice:s3cretpw@127.0.0.1:1/nowhere"
    line = one_line_error(run("status", env={"PGASK_DATABASE_URL": url}))
    assert "cannot connect" in line and "PGASK_DATABASE_URL" in line
    assert "s3cretpw" not in line and "***" in line


def test_usage_errors_exit_2(run):
    assert run("search").exit_code == 2
    assert run("nonsense-command").exit_code == 2


def test_search_before_ingest_is_one_line(run):
    assert "pgask ingest" in one_line_error(run("search", "anything"))
