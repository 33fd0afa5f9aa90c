"""Model-API faults against a local HTTP server that speaks the OpenAI protocols, for the chat model
(answer.ChatModel) and the embeddings API (embed/remote.py) alike: 429 with Retry-After, 5xx,
timeouts, refused keys, malformed answers, a server that is not there; then through the CLI.

Retries and timeouts are the openai SDK's, configured from the settings; the tests set them low
so that a failing case ends within a few seconds.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner
from werkzeug import Request, Response

from pgask.answer import ChatModel
from pgask.cli import app
from pgask.config import Secret, Settings
from pgask.embed import configured_embedder
from pgask.errors import ModelAPIError

from .openai_server import sse_chat
from .processes import free_port
from .helpers import write

KEY = "sk-faults-7d1e0c9b5a"
DIM = 8  # the embeddings server's vectors: what PGASK_EMBED_DIMENSIONS expects


def embeddings(dim: int = DIM) -> Callable[[Request], Response]:
    def answer(request: Request) -> Response:
        texts = json.loads(request.get_data())["input"]
        data = [{"object": "embedding", "index": i, "embedding": np.eye(dim)[i % dim].tolist()}
                for i in range(len(texts))]
        return json_response({"object": "list", "data": data, "model": "acme/embedder",
                              "usage": {"prompt_tokens": 3, "total_tokens": 3}})

    return answer


def json_response(body, status: int = 200, **headers: str) -> Response:
    return Response(json.dumps(body), status=status, headers={"Content-Type": "application/json", **headers})


def error(status: int, message: str, **headers: str) -> Callable[[Request], Response]:
    return lambda request: json_response({"error": {"message": message, "type": "server_error"}}, status, **headers)


def raw(body: str, content_type: str) -> Callable[[Request], Response]:
    return lambda request: Response(body, status=200, headers={"Content-Type": content_type})


class Script:
    """Answers the n-th request with the n-th handler (the last one repeats) and notes when each came."""

    def __init__(self, *handlers: Callable[[Request], Response]):
        self.handlers = handlers
        self.arrived: list[float] = []
        self.authorization: list[str | None] = []
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        with self.lock:
            self.arrived.append(time.monotonic())
            self.authorization.append(request.headers.get("Authorization"))
            n = len(self.arrived) - 1
        return self.handlers[min(n, len(self.handlers) - 1)](request)

    @property
    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.arrived, self.arrived[1:])]


@dataclass
class API:
    name: str
    path: str
    ok: Callable[[Request], Response]
    key_variable: str
    prefix: str  # of its settings: PGASK_LLM_... or PGASK_EMBED_...

    def settings(self, home, base_url: str, *, retries: int = 2, timeout: float = 10.0) -> Settings:
        if self.name == "chat":
            return Settings(home=home, llm_base_url=base_url, openai_api_key=Secret(KEY), llm_max_retries=retries,
                            llm_timeout=timeout)
        return Settings(home=home, embed_model="acme/embedder", embed_base_url=base_url, embed_dimensions=DIM,
                        embed_api_key=Secret(KEY), embed_max_retries=retries, embed_timeout=timeout)

    def call(self, settings: Settings):
        """One request through pgask's own client, configured from `settings`."""
        if self.name == "chat":
            return ChatModel.from_settings(settings).complete([{"role": "user", "content": "How often?"}])[0]
        return configured_embedder(settings).embed_query("How often?")


CHAT = API("chat", "/v1/chat/completions", lambda request: sse_chat(["Twice ", "a week [1]."]), "OPENAI_API_KEY",
           "PGASK_LLM")
EMBEDDINGS = API("embeddings", "/v1/embeddings", embeddings(), "PGASK_EMBED_API_KEY", "PGASK_EMBED")


@pytest.fixture(params=[CHAT, EMBEDDINGS], ids=lambda api: api.name)
def api(request) -> API:
    return request.param


@pytest.fixture
def stall():
    """A handler that answers only when the test is over: a server that hangs."""
    released = threading.Event()

    def hang(request: Request) -> Response:
        released.wait(30)
        return json_response({})

    yield hang
    released.set()


@pytest.fixture
def server():
    """A threaded server: a hanging request does not hold up the retries that follow it."""
    srv = HTTPServer(threaded=True)
    srv.start()
    yield srv
    srv.clear()
    srv.stop()


def serve(server: HTTPServer, api: API, *handlers) -> tuple[Script, str]:
    script = Script(*handlers)
    server.expect_request(api.path, method="POST").respond_with_handler(script)
    return script, server.url_for("/v1")


def succeeded(api: API, result) -> bool:
    return result == "Twice a week [1]." if api.name == "chat" else np.allclose(result, np.eye(DIM)[0])


def test_a_429_is_waited_out_for_as_long_as_retry_after_says_then_succeeds(server, api, home):
    script, url = serve(server, api, error(429, "Rate limit reached", **{"Retry-After": "1"}), api.ok)
    assert succeeded(api, api.call(api.settings(home, url)))
    assert len(script.arrived) == 2
    # the SDK's own first backoff is at most 0.5 s: this wait is the server's
    assert script.gaps[0] >= 0.95


def test_5xx_answers_are_retried_with_backoff_until_one_succeeds(server, api, home):
    script, url = serve(server, api, error(500, "oops"), error(502, "bad gateway"), api.ok)
    assert succeeded(api, api.call(api.settings(home, url, retries=2)))
    assert len(script.arrived) == 3
    assert all(gap >= 0.3 for gap in script.gaps)  # backoff: 0.5 s then 1 s, less up to 25% jitter


def test_5xx_answers_that_persist_end_in_one_clear_error(server, api, home):
    script, url = serve(server, api, error(502, "bad gateway"))
    with pytest.raises(ModelAPIError) as failure:
        api.call(api.settings(home, url, retries=2))
    assert str(failure.value) == (f"the {api.name if api.name == 'embeddings' else 'chat model'} API at {url} "
                                  "failed with HTTP 502 (after 2 retries): try again later")
    assert len(script.arrived) == 3


def test_a_refused_key_is_not_retried_and_the_error_names_its_variable(server, api, home):
    script, url = serve(server, api, error(401, f"Incorrect API key provided: {KEY}"))
    with pytest.raises(ModelAPIError, match=f"refused the key \\(401\\): check {api.key_variable}$") as failure:
        api.call(api.settings(home, url, retries=3))
    assert len(script.arrived) == 1
    assert script.authorization == [f"Bearer {KEY}"]
    assert KEY not in str(failure.value)  # the server quoted the key back; the message does not


def test_an_api_that_does_not_answer_in_time_is_retried_then_a_clear_error(server, api, home, stall):
    script, url = serve(server, api, stall)
    with pytest.raises(ModelAPIError) as failure:
        api.call(api.settings(home, url, retries=1, timeout=0.5))
    assert str(failure.value).endswith(f"did not answer within 0.5s (after 1 retry): try again later, "
                                       f"or raise {api.prefix}_TIMEOUT")
    assert len(script.arrived) == 2


@pytest.mark.parametrize("body,content_type", [
    ('{"object": "list", "data": [', "application/json"),
    ("<html><body>502 Bad Gateway</body></html>", "text/html"),
    ("data: {broken\n\n", "text/event-stream"),
], ids=["truncated-json", "html", "broken-event"])
def test_an_answer_that_is_not_the_protocol_is_one_clear_error(server, api, home, body, content_type):
    script, url = serve(server, api, raw(body, content_type))
    with pytest.raises(ModelAPIError, match=f"API at {url} .*: check {api.prefix}_BASE_URL"):
        api.call(api.settings(home, url))
    assert len(script.arrived) == 1  # a 200 is not retried


def test_a_server_that_is_not_there_is_retried_then_a_clear_error(api, home):
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ModelAPIError, match=f"cannot reach the .* API at {url} \\(after 1 retry\\): "
                                            f"check {api.prefix}_BASE_URL"):
        api.call(api.settings(home, url, retries=1))


# --- through the CLI: one line on stderr, exit 1, nothing stored ---------------------------------------


CLI_FAULTS = {
    "401": ((error(401, "bad key"),), "refused the key (401): check {key}"),
    "502": ((error(502, "bad gateway"),), "failed with HTTP 502 (after 1 retry): try again later"),
    "timeout": (("stall",), "did not answer within 0.5s (after 1 retry)"),
    "not-json": ((raw("<html>proxy error</html>", "text/html"),), "check {prefix}_BASE_URL"),
}


@pytest.fixture(scope="module")
def notes(tmp_path_factory):
    return write(tmp_path_factory.mktemp("notes") / "tomatoes.md", "# Tomatoes\n\nWater tomatoes twice a week.\n")


def one_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and result.stdout == "", result.output
    assert lines[0].startswith("Error: ") and "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("fault", CLI_FAULTS)
def test_ask_with_a_failing_chat_model_is_one_line(server, shared_kb, cli_env, fault, stall):
    handlers, expected = CLI_FAULTS[fault]
    script, url = serve(server, CHAT, *(stall if h == "stall" else h for h in handlers))
    env = {**cli_env, "PGASK_SCHEMA": shared_kb.schema, "PGASK_LLM_BASE_URL": url, "OPENAI_API_KEY": KEY,
           "PGASK_LLM_MAX_RETRIES": "1", "PGASK_LLM_TIMEOUT": "0.5"}
    question = "How often should tomato plants be watered?"
    for args in (["ask", question], ["ask", question, "--json"]):
        line = one_line(CliRunner().invoke(app, args, env=env))
        assert f"the chat model API at {url} " in line
        assert expected.format(key="OPENAI_API_KEY", prefix="PGASK_LLM") in line and KEY not in line
    # once per command for what retrying cannot mend (a refused key, a 200 of the wrong kind), twice for the rest
    assert len(script.arrived) == (2 if fault in ("401", "not-json") else 4)


@pytest.mark.parametrize("fault", [*CLI_FAULTS, "wrong-dimension"])
def test_ingest_with_a_failing_embeddings_api_is_one_line_and_stores_nothing(server, cli_env, notes, fault, stall):
    handlers, expected = CLI_FAULTS.get(fault, ((embeddings(DIM // 2),), f"answered {DIM // 2}-dimensional vectors"))
    script, url = serve(server, EMBEDDINGS, *(stall if h == "stall" else h for h in handlers))
    env = {**cli_env, "PGASK_EMBED_MODEL": "acme/embedder", "PGASK_EMBED_BASE_URL": url, "PGASK_EMBED_API_KEY": KEY,
           "PGASK_EMBED_DIMENSIONS": str(DIM), "PGASK_EMBED_MAX_RETRIES": "1", "PGASK_EMBED_TIMEOUT": "0.5"}
    runner = CliRunner()
    line = one_line(runner.invoke(app, ["ingest", str(notes), "--json"], env=env))
    assert f"API at {url} " in line
    assert expected.format(key="PGASK_EMBED_API_KEY", prefix="PGASK_EMBED") in line and KEY not in line
    status = runner.invoke(app, ["status", "--json"], env=env)
    assert json.loads(status.stdout)["documents"] == 0
    assert len(script.arrived) == (1 if fault in ("401", "not-json", "wrong-dimension") else 2)
