"""Every route of the HTTP API through FastAPI's TestClient: answers, auth, limits and the error contract."""

import json
import re

import pytest
from fastapi.testclient import TestClient
from werkzeug import Response

from pgask.api import MAX_QUESTION_CHARS, check_bind, create_app
from pgask.config import Secret
from pgask.errors import PgaskError
from pgask.kb import KnowledgeBase

from .openai_server import sse_chat, sse_events
from .helpers import make_pdf

TOKEN = "test-token-3f9a1c"
TOMATO = "How often should tomato plants be watered?"


@pytest.fixture(scope="module")
def client(shared_kb):
    return TestClient(create_app(shared_kb))


@pytest.fixture
def fresh(kb):
    """An empty knowledge base of the test's own, for tests that add or delete documents."""
    return TestClient(create_app(kb))


def error_message(response) -> str:
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"]
    return body["error"]["message"]


# --- health, auth, binding ---------------------------------------------------------------------


def test_healthz_reports_database_and_model_without_a_token(shared_kb):
    with KnowledgeBase(shared_kb.settings, api_token=Secret(TOKEN)) as kb:
        response = TestClient(create_app(kb)).get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "model": "sentence-transformers/all-MiniLM-L6-v2",
                               "dim": 384}


def test_healthz_is_503_when_the_database_is_unreachable(settings):
    with KnowledgeBase(settings, database_url="postgresql://nobody@127.0.0.1:1/none") as kb:
        response = TestClient(create_app(kb)).get("/healthz")
    assert response.status_code == 503
    assert "not ready" in error_message(response)


ROUTES = [
    ("POST", "/v1/search", {"json": {"query": "chain"}}),
    ("POST", "/v1/ask", {"json": {"question": TOMATO}}),
    ("GET", "/v1/documents", {}),
    ("POST", "/v1/documents", {"files": {"file": ("a.md", b"# A\n\ntext\n")}}),
    ("DELETE", "/v1/documents/1", {}),
    ("GET", "/v1/models", {}),
    ("POST", "/v1/chat/completions", {"json": {"model": "pgask", "messages": [{"role": "user", "content": TOMATO}]}}),
]


@pytest.mark.parametrize("method,path,body", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_every_route_but_healthz_needs_the_token(shared_kb, method, path, body):
    with KnowledgeBase(shared_kb.settings, api_token=Secret(TOKEN)) as kb:
        client = TestClient(create_app(kb))
        missing = client.request(method, path, **body)
        wrong = client.request(method, path, headers={"Authorization": "Bearer wrong"}, **body)
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "PGASK_API_TOKEN" in error_message(response)


def test_the_right_token_opens_the_api_and_docs_stay_readable(shared_kb):
    with KnowledgeBase(shared_kb.settings, api_token=Secret(TOKEN)) as kb:
        client = TestClient(create_app(kb))
        ok = client.post("/v1/search", json={"query": "chain"}, headers={"Authorization": f"Bearer {TOKEN}"})
        docs, spec = client.get("/docs"), client.get("/openapi.json")
    assert ok.status_code == 200 and ok.json()["results"]
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    paths = spec.json()["paths"]
    assert {"/v1/search", "/v1/ask", "/v1/documents", "/v1/documents/{document_id}", "/v1/chat/completions",
            "/healthz"} <= set(paths)
    assert spec.json()["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.com"])
def test_binding_beyond_loopback_needs_a_token(host):
    with pytest.raises(PgaskError, match="PGASK_API_TOKEN"):
        check_bind(host, None)
    check_bind(host, Secret(TOKEN))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_token(host):
    check_bind(host, None)


# --- search and ask --------------------------------------------------------------------------------


def test_search_ranks_the_matching_passage_first(client):
    response = client.post("/v1/search", json={"query": "oiling a bicycle chain", "k": 3, "metric": "l2"})
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 3
    assert results[0]["source"].endswith("bicycle.html") and results[0]["heading"].endswith("Chain care")
    assert [r["similarity"] for r in results] == sorted((r["similarity"] for r in results), reverse=True)


def test_search_and_ask_take_the_mode_a_metadata_filter_and_a_source_prefix(client):
    keyword = client.post("/v1/search", json={"query": "degreaser", "k": 10, "mode": "keyword"}).json()["results"]
    assert keyword and {r["source"].rsplit("/", 1)[-1] for r in keyword} == {"bicycle.html"}
    html = client.post("/v1/search", json={"query": "watering", "k": 10, "filter": {"format": "html"}}).json()
    assert html["results"] and {r["metadata"]["format"] for r in html["results"]} == {"html"}
    tagged = client.post("/v1/search", json={"query": "watering", "k": 10, "filter": {"tags": ["outdoor"]}}).json()
    assert tagged["results"] and {r["source"].rsplit("/", 1)[-1] for r in tagged["results"]} == {"garden.md"}
    prefix = keyword[0]["source"].rsplit("/", 1)[0] + "/"
    under = client.post("/v1/search", json={"query": "watering", "k": 10, "source": prefix}).json()["results"]
    assert under and all(r["source"].startswith(prefix) for r in under)
    answer = client.post("/v1/ask", json={"question": TOMATO, "mode": "vector", "filter": {"format": "md"}}).json()
    assert answer["sources"] and {s["metadata"]["format"] for s in answer["sources"]} == {"md"}
    assert "two or three times a week" in answer["answer"]
    nothing = client.post("/v1/ask", json={"question": TOMATO, "filter": {"format": "docx"}}).json()
    assert nothing["mode"] == "none" and nothing["sources"] == []


LIMITS = [
    ({"json": {"query": "chain", "k": 101}}, 422, "k: Input should be less than or equal to 100"),
    ({"json": {"query": "chain", "k": 0}}, 422, "k: Input should be greater than or equal to 1"),
    ({"json": {"query": ""}}, 422, "query: String should have at least 1 character"),
    ({"json": {"query": "x" * (MAX_QUESTION_CHARS + 1)}}, 422, "query: String should have at most 4000 characters"),
    ({"json": {"query": "chain", "threshold": 2}}, 422, "threshold: Input should be less than or equal to 1"),
    ({"json": {"query": "chain", "metric": "manhattan"}}, 422, "metric: Input should be 'cosine', 'l2' or 'ip'"),
    ({"json": {"query": "chain", "kk": 3}}, 422, "kk: Extra inputs are not permitted"),
    ({"json": {"query": "chain", "mode": "fuzzy"}}, 422, "mode: Input should be 'vector', 'keyword' or 'hybrid'"),
    ({"json": {"query": "chain", "filter": ["format"]}}, 422, "filter: Input should be a valid dictionary"),
    ({"json": {"k": 3}}, 422, "query: Field required"),
    ({"content": b'{"query": ', "headers": {"Content-Type": "application/json"}}, 422, "not valid JSON"),
    ({"content": b"query=chain", "headers": {"Content-Type": "text/plain"}}, 422, "must be a JSON object"),
    ({"content": b'{"query": "' + b"x" * 1_000_001 + b'"}', "headers": {"Content-Type": "application/json"}}, 413,
     "request body too large: the limit is 1,000,000 bytes"),
]


@pytest.mark.parametrize("request_,status,message", LIMITS, ids=[m for _, _, m in LIMITS])
def test_bad_search_requests_get_a_4xx_json_message(client, request_, status, message):
    response = client.post("/v1/search", **request_)
    assert response.status_code == status
    assert message in error_message(response)


def test_a_chunked_body_over_the_limit_is_refused_while_it_is_read(client):
    def body():
        yield b'{"query": "'
        for _ in range(12):
            yield b"x" * 100_000
        yield b'"}'

    response = client.post("/v1/search", content=body(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "too large" in error_message(response)


@pytest.mark.parametrize("body,message", [
    ({"question": TOMATO, "k": 101}, "k: Input should be less than or equal to 100"),
    ({"question": "   "}, "the question is empty"),
    ({"question": TOMATO, "history": [{"role": "robot", "content": "hi"}]}, "history.0.role"),
    ({"question": TOMATO, "stream": "sometimes"}, "stream: Input should be a valid boolean"),
])
def test_bad_ask_requests_get_a_4xx_json_message(client, body, message):
    response = client.post("/v1/ask", json=body)
    assert 400 <= response.status_code < 500
    assert message in error_message(response)


def test_ask_answers_with_citations_and_sources(client):
    response = client.post("/v1/ask", json={"question": TOMATO, "k": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["mode"] == "extractive" and body["question"] == body["standalone_question"] == TOMATO
    assert "two or three times a week" in body["answer"]
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", body["answer"])}
    assert cited and cited <= {s["n"] for s in body["sources"]}
    assert [s["n"] for s in body["sources"]] == list(range(1, len(body["sources"]) + 1)) and len(body["sources"]) <= 3


def test_ask_makes_a_follow_up_standalone_and_shows_it(client):
    history = [{"role": "user", "content": "How do I care for my bicycle chain?"},
               {"role": "assistant", "content": "Clean it with a degreaser [1]."}]
    body = client.post("/v1/ask", json={"question": "Which product should I use for it?", "history": history}).json()
    assert body["question"] == "Which product should I use for it?"
    assert body["standalone_question"] == "Which product should I use for it? (care bicycle chain)"
    assert body["sources"][0]["source"].endswith("bicycle.html") and "degreaser" in body["answer"]


def test_ask_streams_question_tokens_sources_then_done(client):
    with client.stream("POST", "/v1/ask", json={"question": TOMATO, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response.read().decode())
    names = [name for name, _ in events]
    assert names[0] == "question" and names[-2:] == ["sources", "done"]
    assert set(names[1:-2]) == {"token"}
    assert json.loads(events[0][1]) == {"question": TOMATO, "standalone_question": TOMATO}
    streamed = "".join(json.loads(data)["text"] for name, data in events if name == "token")
    sources = json.loads(events[-2][1])
    assert sources["mode"] == "extractive" and sources["sources"][0]["n"] == 1
    assert json.loads(events[-1][1])["answer"] == streamed and "two or three times a week" in streamed
    # an extractive answer streams a cited sentence at a time
    assert names.count("token") == streamed.count("] ") + 1 >= 2


def test_an_empty_knowledge_base_is_a_400_before_any_stream(kb):
    client = TestClient(create_app(kb))
    for body in ({"question": TOMATO}, {"question": TOMATO, "stream": True}):
        response = client.post("/v1/ask", json=body)
        assert response.status_code == 400
        assert "pgask ingest" in error_message(response)
    assert client.post("/v1/search", json={"query": "chain"}).status_code == 400
    assert client.get("/v1/documents").json() == {"total": 0, "limit": 50, "offset": 0, "documents": []}
    assert client.delete("/v1/documents/42").status_code == 404


def test_a_failing_model_api_is_a_502_with_its_message(shared_kb, httpserver):
    httpserver.expect_request("/v1/chat/completions").respond_with_response(
        Response(json.dumps({"error": {"message": "bad key"}}), status=401, headers={"Content-Type": "application/json"}))
    with KnowledgeBase(shared_kb.settings, llm_base_url=httpserver.url_for("/v1")) as kb:
        client = TestClient(create_app(kb))
        plain = client.post("/v1/ask", json={"question": TOMATO})
        with client.stream("POST", "/v1/ask", json={"question": TOMATO, "stream": True}) as streamed:
            events = sse_events(streamed.read().decode())
    assert plain.status_code == 502 and "OPENAI_API_KEY" in error_message(plain)
    # the stream had started (the question event) when the model failed: the error is its last event
    assert [name for name, _ in events] == ["question", "error"]
    assert "OPENAI_API_KEY" in json.loads(events[-1][1])["error"]["message"]


# --- documents ---------------------------------------------------------------------------------------


def test_documents_are_listed_in_pages(client):
    first = client.get("/v1/documents", params={"limit": 2}).json()
    rest = client.get("/v1/documents", params={"limit": 2, "offset": 2}).json()
    assert first["total"] == rest["total"] == 4
    sources = [d["source"] for d in first["documents"] + rest["documents"]]
    assert sources == sorted(sources) and len(set(sources)) == 4
    assert {d["title"] for d in first["documents"] + rest["documents"]} >= {"Bicycle Maintenance",
                                                                            "The Gardener's Handbook"}
    assert all(d["chunks"] >= 1 for d in first["documents"])
    for params in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"limit": "many"}):
        response = client.get("/v1/documents", params=params)
        assert response.status_code == 422 and error_message(response)


def test_upload_ingests_replaces_and_delete_removes(fresh, home):
    note = b"# Beekeeping\n\nInspect the hive every seven days in spring to look for queen cells.\n"
    added = fresh.post("/v1/documents", files={"file": ("bees.md", note, "text/markdown")})
    assert added.status_code == 201
    doc = added.json()
    assert doc["status"] == "added" and doc["title"] == "Beekeeping" and doc["chunks"] == 1
    assert doc["source"] == str(home / "uploads" / "bees.md")
    hits = fresh.post("/v1/search", json={"query": "how often to inspect a beehive", "k": 1}).json()["results"]
    assert hits[0]["document_id"] == doc["id"]
    assert [d["id"] for d in fresh.get("/v1/documents").json()["documents"]] == [doc["id"]]

    again = fresh.post("/v1/documents", files={"file": ("bees.md", note.replace(b"seven", b"ten"))}).json()
    assert again["status"] == "updated" and again["id"] == doc["id"]
    assert fresh.post("/v1/documents", files={"file": ("bees.md", note.replace(b"seven", b"ten"))}).json()[
        "status"] == "unchanged"

    deleted = fresh.delete(f"/v1/documents/{doc['id']}")
    assert deleted.status_code == 200 and deleted.json() == {"id": doc["id"], "source": doc["source"], "deleted": True}
    assert not (home / "uploads" / "bees.md").exists()
    assert fresh.get("/v1/documents").json()["total"] == 0
    gone = fresh.delete(f"/v1/documents/{doc['id']}")
    assert gone.status_code == 404 and str(doc["id"]) in error_message(gone)
    assert fresh.delete("/v1/documents/not-a-number").status_code == 422


@pytest.mark.parametrize("filename,saved", [
    ("../../escaped.md", "escaped.md"),
    ("..\\..\\windows.md", "windows.md"),
    ("/etc/cron.d/job.md", "job.md"),
    (".hidden.md", "hidden.md"),
    ("my notes (v2).md", "my_notes_v2_.md"),
])
def test_upload_names_cannot_leave_the_uploads_folder(fresh, home, filename, saved):
    response = fresh.post("/v1/documents", files={"file": (filename, b"# Note\n\nCompost needs air and water.\n")})
    assert response.status_code == 201
    assert response.json()["source"] == str(home / "uploads" / saved)
    assert not (home / "escaped.md").exists() and not (home.parent / "escaped.md").exists()
    assert not (home / "windows.md").exists() and not (home / "job.md").exists()


def test_uploads_that_cannot_be_ingested_are_refused(settings):
    with KnowledgeBase(settings.with_overrides(max_file_mb=1)) as kb:
        client = TestClient(create_app(kb))
        cases = [
            (("tool.exe", b"MZ\x90\x00"), 415, "pgask reads"),
            (("..", b"# x\n"), 415, "cannot ingest a file named '..'"),
            (("empty.md", b""), 422, "empty.md is empty"),
            (("binary.md", b"\x00\x01\x02" * 100), 422, "binary data"),
            (("big.txt", b"word " * 210_000), 413, "big.txt is larger than 1 MB"),
            (("bigger.txt", b"word " * 300_000), 413, "request body too large"),
        ]
        for file, status, message in cases:
            response = client.post("/v1/documents", files={"file": file})
            assert response.status_code == status, file[0]
            assert message in error_message(response)
        missing = client.post("/v1/documents", data={"name": "x"})
        assert missing.status_code == 422 and "file: Field required" in error_message(missing)
        assert client.get("/v1/documents").json()["total"] == 0
    assert not (settings.home / "uploads" / "binary.md").exists()


# --- OpenAI-compatible chat ---------------------------------------------------------------------------


def test_chat_completion_answers_with_citations_and_sources(client):
    response = client.post("/v1/chat/completions", json={
        "model": "pgask", "temperature": 0.2,
        "messages": [{"role": "system", "content": "You are helpful."},
                     {"role": "user", "content": [{"type": "text", "text": TOMATO}]}],
    })
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == "pgask"
    message = body["choices"][0]["message"]
    assert message["role"] == "assistant" and body["choices"][0]["finish_reason"] == "stop"
    answer, footer = message["content"].split("\n\nSources:\n")
    assert "two or three times a week" in answer and re.search(r"\[\d\]", answer)
    assert footer.splitlines()[0].startswith("[1] ") and footer.splitlines()[0].endswith("garden.md › "
                                                                                             + body["sources"][0]["heading"])
    assert body["sources"][0]["n"] == 1 and body["mode"] == "extractive" and body["standalone_question"] == TOMATO


def test_chat_completion_refuses_what_it_cannot_answer(client):
    cases = [
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": TOMATO}]}, 404, "unknown model 'gpt-4o'"),
        ({"model": "pgask", "messages": [{"role": "user", "content": TOMATO}, {"role": "assistant", "content": "x"}]},
         400, "the last message must be a user message"),
        ({"model": "pgask", "messages": []}, 422, "messages: List should have at least 1 item"),
        ({"model": "pgask", "messages": [{"role": "user", "content": "x" * (MAX_QUESTION_CHARS + 1)}]}, 400,
         "longer than 4000 characters"),
        ({"messages": [{"role": "user", "content": TOMATO}]}, 422, "model: Field required"),
    ]
    for body, status, message in cases:
        response = client.post("/v1/chat/completions", json=body)
        assert response.status_code == status
        assert message in error_message(response)


def test_models_lists_pgask(client):
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["pgask"]


def test_chat_completion_uses_the_model_to_rewrite_and_answer(shared_kb, httpserver):
    httpserver.expect_ordered_request("/v1/chat/completions").respond_with_response(
        sse_chat(["Which product cleans a bicycle chain?"], usage=(120, 30)))
    httpserver.expect_ordered_request("/v1/chat/completions").respond_with_response(
        sse_chat(["A degreaser ", "and a brush [1]."], usage=(200, 9)))
    with KnowledgeBase(shared_kb.settings, llm_base_url=httpserver.url_for("/v1")) as kb:
        body = TestClient(create_app(kb)).post("/v1/chat/completions", json={"model": "pgask", "messages": [
            {"role": "user", "content": "How do I care for my bicycle chain?"},
            {"role": "assistant", "content": "Clean it [1]."},
            {"role": "user", "content": "Which product should I use for it?"},
        ]}).json()
    assert body["standalone_question"] == "Which product cleans a bicycle chain?" and body["mode"] == "llm"
    assert body["choices"][0]["message"]["content"].startswith("A degreaser and a brush [1].\n\nSources:\n[1] ")
    # the request's usage counts both model calls it made: the rewrite and the answer
    assert body["usage"] == {"prompt_tokens": 320, "completion_tokens": 39, "total_tokens": 359}


def test_upload_of_a_pdf_round_trips(fresh, tmp_path):
    pdf = make_pdf(tmp_path / "knots.pdf", "Knots", ["A bowline makes a fixed loop at the end of a rope that does not slip."])
    response = fresh.post("/v1/documents", files={"file": ("knots.pdf", pdf.read_bytes(), "application/pdf")})
    assert response.status_code == 201 and response.json()["title"] == "Knots"
    answer = fresh.post("/v1/ask", json={"question": "Which knot makes a fixed loop that does not slip?"}).json()
    assert "bowline" in answer["answer"] and answer["sources"][0]["source"].endswith("knots.pdf")
