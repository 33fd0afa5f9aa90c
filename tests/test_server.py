"""The API over real HTTP: uvicorn on a free loopback port, httpx reading Server-Sent Events, the
`openai` SDK as a client, and `pgask serve` itself as a process."""

import json
import os
import re
import subprocess

import httpx
import openai
import pytest

from pgask.config import Secret
from pgask.kb import KnowledgeBase

from .openai_server import sse_chat, sse_events
from .processes import PGASK, free_port, stop, wait_until_up
from .helpers import serving

TOKEN = "server-token-5b2e7d"
TOMATO = "How often should tomato plants be watered?"


@pytest.fixture(scope="module")
def url(shared_kb):
    with KnowledgeBase(shared_kb.settings, api_token=Secret(TOKEN)) as kb, serving(kb) as base:
        yield base


@pytest.fixture
def client(url):
    return openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0)


def test_sse_stream_over_http_sends_each_model_token_then_sources(shared_kb, httpserver):
    tokens = ["Water tomatoes ", "deeply, two or three ", "times a week [1]."]
    httpserver.expect_request("/v1/chat/completions").respond_with_response(sse_chat(tokens))
    kb = KnowledgeBase(shared_kb.settings, llm_base_url=httpserver.url_for("/v1"), api_token=Secret(TOKEN))
    with kb, serving(kb) as base, httpx.stream(
        "POST", f"{base}/v1/ask", json={"question": TOMATO, "stream": True},
        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60,
    ) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = sse_events("".join(response.iter_text()))
    assert [name for name, _ in events] == ["question", "token", "token", "token", "sources", "done"]
    assert [json.loads(data)["text"] for name, data in events if name == "token"] == tokens
    sources = json.loads(events[4][1])
    assert sources["mode"] == "llm" and sources["sources"][0]["source"].endswith("garden.md")
    done = json.loads(events[5][1])
    assert done["answer"] == "".join(tokens) and done["usage"]["tokens_out"] == 30


def test_healthz_and_401_over_http(url):
    assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
    refused = httpx.post(f"{url}/v1/search", json={"query": "chain"})
    assert refused.status_code == 401 and "PGASK_API_TOKEN" in refused.json()["error"]["message"]


def test_openai_sdk_chat_completion(client):
    completion = client.chat.completions.create(model="pgask", messages=[{"role": "user", "content": TOMATO}])
    content = completion.choices[0].message.content
    assert "two or three times a week" in content and re.search(r"\[\d\]", content.split("Sources:")[0])
    assert "\n\nSources:\n[1] " in content
    sources = completion.model_extra["sources"]
    assert sources[0]["n"] == 1 and sources[0]["source"].endswith("garden.md")
    assert completion.model == "pgask" and completion.choices[0].finish_reason == "stop"


def test_openai_sdk_streamed_chat_completion_with_a_follow_up(client):
    stream = client.chat.completions.create(model="pgask", stream=True, messages=[
        {"role": "user", "content": "How do I care for my bicycle chain?"},
        {"role": "assistant", "content": "Clean it [1]."},
        {"role": "user", "content": "Which product should I use for it?"},
    ])
    chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "degreaser" in content and "[1]" in content and "bicycle.html" in content.split("Sources:")[1]
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.model_extra["standalone_question"] == "Which product should I use for it? (care bicycle chain)"
    assert last.model_extra["sources"][0]["source"].endswith("bicycle.html")


def test_openai_sdk_sees_errors_as_its_own_exceptions(url, client):
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).chat.completions.create(
            model="pgask", messages=[{"role": "user", "content": TOMATO}])
    with pytest.raises(openai.NotFoundError, match="unknown model 'gpt-4o'"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": TOMATO}])
    assert [m.id for m in client.models.list()] == ["pgask"]


def test_pgask_serve_on_all_interfaces_requires_the_token(shared_kb, cli_env):
    port = free_port()
    env = {**os.environ, **cli_env, "PGASK_SCHEMA": shared_kb.schema, "PGASK_API_TOKEN": TOKEN}
    process = subprocess.Popen([PGASK, "serve", "--host", "0.0.0.0", "--port", str(port), "--json"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_until_up(process, f"{base}/healthz").status_code == 200
        assert httpx.post(f"{base}/v1/search", json={"query": "chain"}).status_code == 401
        allowed = httpx.post(f"{base}/v1/search", json={"query": "chain", "k": 1},
                             headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        assert allowed.json()["results"][0]["source"].endswith("bicycle.html")
    finally:
        stdout, stderr = stop(process)
    # stdout is one JSON document; uvicorn's log, requests included, went to stderr
    assert json.loads(stdout) == {"url": f"http://0.0.0.0:{port}", "docs": f"http://0.0.0.0:{port}/docs", "auth": True}
    assert '"POST /v1/search HTTP/1.1" 401' in stderr and '"POST /v1/search HTTP/1.1" 200' in stderr
    assert TOKEN not in stdout + stderr
