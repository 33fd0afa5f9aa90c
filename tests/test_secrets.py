"""Secrets: keys and a database password are planted, every command, route and error path runs with
them, and everything that comes out is searched for them: output, error messages, logs at DEBUG,
`pgask serve`'s stderr, the Postgres server's log, files, and every row of every table."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from typer.testing import CliRunner
from werkzeug import Request, Response

from pgask.api import create_app
from pgask.cli import app
from pgask.config import load_settings
from pgask.db.connect import connect
from pgask.errors import PgaskError
from pgask.kb import KnowledgeBase

from .openai_server import EmbeddingsServer, sse_chat
from .postgres_server import PASSWORD
from .processes import PGASK, free_port, stop, wait_until_up

# each with a middle part that a masked form (first 3 and last 2 characters) never shows
OPENAI_KEY = "sk-PLANTED-openai-4f9c1e7a2b"
EMBED_KEY = "emb-PLANTED-embed-8d3b6a1f0c"
API_TOKEN = "tok-PLANTED-api-2e7c9f4b1d"
WRONG_KEY = "sk-PLANTED-wrong-6a0d2c8e4f"
WRONG_PASSWORD = "PLANTED-wrong-db-pw-93b1"
SECRETS = {"OPENAI_API_KEY": OPENAI_KEY, "PGASK_EMBED_API_KEY": EMBED_KEY, "PGASK_API_TOKEN": API_TOKEN,
           "a wrong key": WRONG_KEY, "the database password": PASSWORD, "a wrong database password": WRONG_PASSWORD}
TOMATO = "How often should tomato plants be watered?"


def leaked(text: str) -> list[str]:
    """The secrets that `text` shows, whole or their middle part."""
    return [name for name, secret in SECRETS.items() if secret in text or secret[3:-2] in text]


def keyed(key: str, answer):
    """A handler that answers like `answer` for the right bearer key and 401 for any other, as OpenAI does."""

    def handle(request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {key}":
            given = request.headers.get("Authorization", "")
            return Response(json.dumps({"error": {"message": f"Incorrect API key provided: {given[7:]}",
                                                  "type": "invalid_request_error"}}),
                            status=401, headers={"Content-Type": "application/json"})
        return answer(request)

    return handle


@pytest.fixture
def env(cli_env, postgres_server, httpserver, tmp_path) -> dict:
    """Keys for an embeddings API and a chat API (local servers that check them), the API token and a
    password-protected database."""
    httpserver.expect_request("/v1/embeddings").respond_with_handler(keyed(EMBED_KEY, EmbeddingsServer(256)))
    httpserver.expect_request("/v1/chat/completions").respond_with_handler(
        keyed(OPENAI_KEY, lambda request: sse_chat(["Two or three ", "times a week [1]."])))
    return {**cli_env, "PGASK_DATABASE_URL": postgres_server.url, "PGASK_HOME": str(tmp_path / "home"),
            "PGASK_EMBED_MODEL": "openai:text-embedding-3-small", "PGASK_EMBED_DIMENSIONS": "256",
            "PGASK_EMBED_BASE_URL": httpserver.url_for("/v1"), "PGASK_EMBED_API_KEY": EMBED_KEY,
            "PGASK_LLM_BASE_URL": httpserver.url_for("/v1"), "OPENAI_API_KEY": OPENAI_KEY,
            "PGASK_API_TOKEN": API_TOKEN, "PGASK_LLM_MAX_RETRIES": "0", "PGASK_EMBED_MAX_RETRIES": "0"}


def database_dump(url: str, schema: str) -> str:
    """Every row of every table in the schema as text, the server's settings, and what its sessions show."""
    import psycopg

    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))]
        assert {"documents", "chunks", "settings", "usage", "query_cache"} <= set(tables)
        parts = [conn.execute(sql.SQL("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM {}.{} t").format(
            sql.Identifier(schema), sql.Identifier(table))).fetchone()[0] for table in tables]
        parts.append(conn.execute("SELECT string_agg(name || '=' || coalesce(setting, ''), ' ') FROM pg_settings")
                     .fetchone()[0])
        parts.append(conn.execute("SELECT string_agg(coalesce(application_name, '') || ' ' || coalesce(query, ''), "
                                  "E'\\n') FROM pg_stat_activity").fetchone()[0])
        parts.append(conn.execute("SELECT coalesce(string_agg(array_to_string(setconfig, ' '), ' '), '') "
                                  "FROM pg_db_role_setting").fetchone()[0])
    return "\n".join(parts)


def test_no_secret_reaches_output_logs_errors_or_the_database(env, postgres_server, httpserver, corpus, caplog):
    caplog.set_level(logging.DEBUG)
    runner = CliRunner()
    seen: dict[str, str] = {}  # where -> what came out there

    def run(*args, expect: int = 0, input: str = "", **extra) -> str:
        result = runner.invoke(app, list(args), env={**env, **extra}, input=input)
        seen[f"{len(seen)}: pgask {' '.join(args)} {extra}"] = result.stdout + result.stderr
        assert result.exit_code == expect, result.output
        return result.stdout + result.stderr

    # every command, human and --json
    for json_flag in ([], ["--json"]):
        run("ingest", str(corpus), *json_flag)
        assert "bicycle.html" in run("search", "oiling a bicycle chain", *json_flag)
        assert "times a week [1]" in run("ask", TOMATO, *json_flag)
        assert "times a week [1]" in run("chat", *json_flag, input=f"{TOMATO}\n")
        run("status", *json_flag)
        run("usage", *json_flag)
        run("sql", "--install", *json_flag)
    # error paths: wrong keys, a wrong password, URLs the driver cannot use
    assert "check OPENAI_API_KEY" in run("ask", TOMATO, expect=1, OPENAI_API_KEY=WRONG_KEY)
    assert "check PGASK_EMBED_API_KEY" in run("search", "a question never asked", expect=1,
                                              PGASK_EMBED_API_KEY=WRONG_KEY)
    wrong_url = postgres_server.url.replace(PASSWORD, WRONG_PASSWORD)
    for command in (["status"], ["search", "chain", "--json"], ["ingest", str(corpus)]):
        assert "password authentication failed" in run(*command, expect=1, PGASK_DATABASE_URL=wrong_url)
    conninfo = f"host=127.0.0.1 port={postgres_server.port} user=postgres password={PASSWORD} dbname=postgres"
    assert "password=***" in run("status", "--json", PGASK_DATABASE_URL=conninfo)
    run("status", expect=1, PGASK_DATABASE_URL=postgres_server.url + "?sslmode=bogus")
    run("status", expect=1, PGASK_DATABASE_URL=postgres_server.url.replace(str(postgres_server.port), "notaport"))
    run("status", expect=1, PGASK_DATABASE_URL=f"host=127.0.0.1 password={PASSWORD} port")
    # libpq quotes the parts of a URL it cannot parse: here, the password
    run("status", expect=1, PGASK_DATABASE_URL=postgres_server.url.replace(PASSWORD, f"{PASSWORD} %zz"))

    # the HTTP API, its description and its errors
    settings = load_settings(environ=env)
    with KnowledgeBase(settings) as kb:
        client = TestClient(create_app(kb))
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        calls = [
            ("GET", "/healthz", {}), ("GET", "/docs", {}), ("GET", "/openapi.json", {}),
            ("POST", "/v1/search", {"json": {"query": "chain"}, "headers": auth}),
            ("POST", "/v1/ask", {"json": {"question": TOMATO}, "headers": auth}),
            ("POST", "/v1/ask", {"json": {"question": TOMATO, "stream": True}, "headers": auth}),
            ("POST", "/v1/chat/completions", {"json": {"model": "pgask", "messages": [{"role": "user", "content": TOMATO}]},
                                              "headers": auth}),
            ("GET", "/v1/documents", {"headers": auth}),
            ("POST", "/v1/documents", {"files": {"file": ("bees.md", b"# Bees\n\nInspect hives weekly.\n")},
                                       "headers": auth}),
            ("POST", "/v1/search", {"json": {"query": "chain"}, "headers": {"Authorization": f"Bearer {WRONG_KEY}"}}),
            ("POST", "/v1/search", {"json": {"query": "chain", "k": 0}, "headers": auth}),
            ("DELETE", "/v1/documents/1", {"headers": auth}),
        ]
        for method, path, request in calls:
            response = client.request(method, path, **request)
            assert response.status_code < 500, (path, response.text)
            seen[f"{len(seen)}: {method} {path}"] = json.dumps(dict(response.headers)) + response.text
    with KnowledgeBase(settings, openai_api_key=WRONG_KEY) as kb:  # a model API that refuses the key: 502
        response = TestClient(create_app(kb)).post("/v1/ask", json={"question": TOMATO}, headers=auth)
        assert response.status_code == 502 and "OPENAI_API_KEY" in response.text
        seen["POST /v1/ask with a wrong model key"] = response.text
    with KnowledgeBase(settings, database_url=wrong_url) as kb:  # a database that refuses the password: 503
        response = TestClient(create_app(kb)).get("/healthz")
        assert response.status_code == 503 and "password authentication failed" in response.text
        seen["GET /healthz with a wrong password"] = response.text

    # pgask serve as a process: its stdout and stderr (uvicorn's log, requests included)
    port = free_port()
    process = subprocess.Popen([PGASK, "serve", "--port", str(port), "--json"], env={**os.environ, **env},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(process, f"{base}/healthz")
        for headers in ({"Authorization": f"Bearer {API_TOKEN}"}, {"Authorization": f"Bearer {WRONG_KEY}"}):
            httpx.post(f"{base}/v1/ask", json={"question": TOMATO}, headers=headers, timeout=120)
    finally:
        out, err = stop(process)
    assert '"POST /v1/ask HTTP/1.1" 200' in err and '"POST /v1/ask HTTP/1.1" 401' in err
    seen["pgask serve"] = out + err

    # the keys were used: the servers were sent each of them
    sent = {request.headers.get("Authorization") for request, _ in httpserver.log}
    assert {f"Bearer {OPENAI_KEY}", f"Bearer {EMBED_KEY}", f"Bearer {WRONG_KEY}"} <= sent

    seen["logs at DEBUG"] = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert any(r.name.startswith(("openai", "httpx", "psycopg")) for r in caplog.records)
    seen["postgres server log"] = (postgres_server.root / "log").read_text(errors="replace")
    seen["database"] = database_dump(postgres_server.url, env["PGASK_SCHEMA"])
    home = Path(env["PGASK_HOME"])
    for path in home.rglob("*") if home.exists() else ():
        if path.is_file():
            seen[f"file {path}"] = path.read_bytes().decode("utf-8", "replace")

    leaks = {where: names for where, text in seen.items() if (names := leaked(text))}
    assert leaks == {}


@pytest.mark.parametrize("url", [
    "postgresql://postgres:pass word PLANTED@127.0.0.1:1/postgres",  # unexpected spaces found in "..."
    "postgresql://postgres:PLANTED%zz@127.0.0.1:1/postgres",  # invalid percent-encoded token: "..."
    "postgresql://postgres@127.0.0.1:1/postgres?password=PLANTED%zz&sslmode=bogus",
    "host=127.0.0.1 port=1 password='PLANTED pw' sslmode=bogus",
    "host=127.0.0.1 port=1 password=PLANTED sslmode=bogus",
])
def test_a_database_url_the_driver_cannot_use_is_reported_without_its_password(url):
    with pytest.raises(PgaskError) as failure:
        connect(url)
    message = str(failure.value)
    assert "PLANTED" not in message and "***" in message
    assert message.startswith(("invalid database URL", "cannot connect to Postgres at"))
