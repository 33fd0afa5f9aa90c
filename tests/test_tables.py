"""Rows of an existing table as documents, kept in sync by re-reading or by a trigger-fed queue.

Every test creates its own source table in a schema of its own on the shared embedded server.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
import tracemalloc

import psycopg
import pytest
from typer.testing import CliRunner

from pgask.cli import app
from pgask.config import Settings
from pgask.db.connect import connect
from pgask.errors import PgaskError
from pgask.ingest.table_rows import TableSpec, read_documents, row_reader
from pgask.kb import KnowledgeBase

from .helpers import assert_matches_table, execute, make_source, remote_kb, stored_rows


def chunk_text(kb: KnowledgeBase, table: str, row_id: object) -> str:
    with kb.connection() as conn:
        rows = conn.execute(f"SELECT c.content FROM {kb.schema}.chunks c JOIN {kb.schema}.documents d "
                            "ON d.id = c.document_id WHERE d.source = %s ORDER BY c.ordinal",
                            (f"table:{table}/{row_id}",)).fetchall()
    return "\n".join(r[0] for r in rows)


# --- a few hundred rows, ingested once for the read-only tests ---------------------------------------


@pytest.fixture(scope="module")
def helpdesk(home):
    settings = Settings(home=home, schema="tables_search")
    with KnowledgeBase(settings) as kb:
        table = make_source(kb.url, "helpdesk", 300)
        result = kb.ingest_table(table, id_column="id", text_columns=["body"], title_column="subject",
                                 metadata_columns=["status"])
        yield kb, table, result


def test_rows_become_documents_found_by_paraphrase_and_cited_by_table_and_id(helpdesk):
    kb, table, result = helpdesk
    assert (result.report.added, result.report.failed, result.mode) == (300, [], "read")

    hit = kb.search("coffee maker dripping onto the ground while frothing milk", k=1)[0]
    assert hit.table_row == f"{table} #4211"
    assert hit.source == f"table:{table}/4211"
    assert hit.title == "Kitchen espresso machine" and "steams milk" in hit.content
    assert hit.metadata == {"table": table, "row_id": "4211", "status": "open"}

    answer = kb.ask("Where is water leaking when milk is steamed?")
    assert answer.sources[0].table_row == f"{table} #4211"

    source, = kb.status().table_sources
    assert (source.table, source.documents, source.watching) == (table, 300, False)
    assert source.last_sync is not None and source.definition["text"] == ["body"]


def test_cli_search_and_status_name_the_table_and_row(helpdesk, cli_env):
    kb, table, _ = helpdesk
    runner = CliRunner()
    env = {**cli_env, "PGASK_SCHEMA": kb.schema}
    result = runner.invoke(app, ["search", "coffee maker dripping onto the ground while frothing milk", "-k", "1"], env=env)
    assert result.exit_code == 0, result.output
    assert f"{table} #4211" in result.stdout
    data = json.loads(runner.invoke(app, ["search", "espresso leak", "--json", "-k", "1"], env=env).stdout)
    assert data["results"][0]["table_row"] == f"{table} #4211"
    status = runner.invoke(app, ["status"], env=env).stdout
    assert f"{table}: 300 rows, not watched, last sync" in status


def test_http_search_and_chat_cite_the_row(helpdesk):
    from fastapi.testclient import TestClient

    from pgask.api import create_app

    kb, table, _ = helpdesk
    client = TestClient(create_app(kb))
    first = client.post("/v1/search", json={"query": "espresso machine leaking", "k": 1}).json()["results"][0]
    assert (first["source"], first["metadata"]["table"], first["metadata"]["row_id"]) == (f"table:{table}/4211", table, "4211")
    reply = client.post("/v1/chat/completions", json={"model": "pgask", "messages": [
        {"role": "user", "content": "Where is water leaking when milk is steamed?"}]}).json()
    assert f"[1] {table} #4211" in reply["choices"][0]["message"]["content"]


def test_unchanged_rerun_embeds_nothing(helpdesk):
    kb, table, _ = helpdesk
    again = kb.ingest_table(table)  # the remembered definition
    assert (again.report.added, again.report.updated, again.report.unchanged, again.report.chunks) == (0, 0, 300, 0)


# --- sync ----------------------------------------------------------------------------------------------


def test_sync_after_update_insert_delete_changes_exactly_those_rows(kb, schema):
    table = make_source(kb.url, f"src_{schema}", 60)
    spec = TableSpec(table, "id", ("body",), "subject")
    first = kb.ingest_table(table, id_column="id", text_columns=["body"], title_column="subject")
    assert first.report.added == 60
    before = stored_rows(kb, table)

    execute(kb.url,
            f"UPDATE {table} SET body = 'The projector bulb exploded with a bang during the board meeting.' WHERE id = 5",
            f"UPDATE {table} SET body = body || ' It happened twice.' WHERE id = 6",
            f"INSERT INTO {table} (id, subject, body, status) VALUES (61, 'Chair', 'The office chair wobbles.', 'open'), "
            "(62, 'Blinds', 'The window blinds are stuck halfway down.', 'open')",
            f"DELETE FROM {table} WHERE id IN (7, 8)")
    rerun = kb.ingest_table(table)  # rerunning without --prune leaves deleted rows
    assert (rerun.report.added, rerun.report.updated, rerun.report.deleted) == (2, 2, 0)

    execute(kb.url, f"UPDATE {table} SET body = 'The scanner glass is scratched.' WHERE id = 9")
    synced, = kb.sync()
    assert synced.mode == "read" and not synced.watching
    assert (synced.report.added, synced.report.updated, synced.report.unchanged, synced.report.deleted) == (0, 1, 59, 2)

    after = stored_rows(kb, table)
    touched = {row_id for row_id in after if before.get(row_id) != after[row_id]}
    assert touched == {"5", "6", "9", "61", "62"}
    assert set(before) - set(after) == {"7", "8"}
    assert chunk_text(kb, table, 5) == "The projector bulb exploded with a bang during the board meeting."
    assert chunk_text(kb, table, 9) == "The scanner glass is scratched."
    assert kb.search("lamp blew up in a meeting", k=1)[0].table_row == f"{table} #5"
    assert_matches_table(kb, spec)


def test_watch_queues_changes_of_another_connection_and_sync_applies_only_those(kb, schema):
    table = make_source(kb.url, f"src_{schema}", 40)
    spec = TableSpec(table, "id", ("subject", "body"), metadata_columns=("status",))
    kb.ingest_table(table, id_column="id", text_columns=["subject", "body"], metadata_columns=["status"], watch=True)
    before = stored_rows(kb, table)

    execute(kb.url,
            f"UPDATE {table} SET body = 'The laptop fan whines like a jet engine.' WHERE id = 5",
            f"INSERT INTO {table} (id, subject, body, status) VALUES (1000, 'Plant', 'The office plant needs water.', 'open')",
            f"DELETE FROM {table} WHERE id = 7",
            f"UPDATE {table} SET id = 2000 WHERE id = 9",  # a new id: one document goes, another comes
            f"UPDATE {table} SET opened = opened - 1 WHERE id = 11")  # a column pgask does not read
    source, = kb.status().table_sources
    assert source.watching and source.pending == 6  # 5, 1000, 7, 9 and 2000, 11

    synced, = kb.sync()
    assert (synced.mode, synced.changes) == ("changes", 6)
    assert (synced.report.added, synced.report.updated, synced.report.unchanged, synced.report.deleted) == (2, 1, 1, 2)
    after = stored_rows(kb, table)
    assert {row_id for row_id in after if before.get(row_id) != after[row_id]} == {"5", "1000", "2000"}
    assert set(before) - set(after) == {"7", "9"}
    assert "jet engine" in chunk_text(kb, table, 5)
    assert_matches_table(kb, spec)

    idle, = kb.sync()
    assert (idle.changes, idle.report.added, idle.report.updated, idle.report.deleted) == (0, 0, 0, 0)
    whole, = kb.sync(full=True)
    assert (whole.mode, whole.report.unchanged, whole.report.chunks) == ("read", 40, 0)

    execute(kb.url, f"TRUNCATE {table}",
            f"INSERT INTO {table} (id, subject, body, status) VALUES (1, 'Lift', 'The lift is stuck on floor two.', 'open')")
    reloaded, = kb.sync()
    assert reloaded.mode == "read" and reloaded.report.deleted == 39
    assert_matches_table(kb, spec)
    assert kb.status().table_sources[0].pending == 0


def test_unwatch_drops_trigger_and_queue_and_sync_reads_the_table(kb, schema):
    table = make_source(kb.url, f"src_{schema}", 4)
    kb.ingest_table(table, id_column="id", text_columns=["body"], watch=True)

    def watch_objects() -> tuple[int, object, object]:
        with psycopg.connect(kb.url) as conn:
            return conn.execute(
                "SELECT (SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass), to_regclass(%s), "
                "to_regprocedure(%s)", (table, f"{kb.schema}.table_changes", f"{kb.schema}.record_table_change()"),
            ).fetchone()

    assert watch_objects()[0] == 4
    assert kb.unwatch_table(table) == table
    assert watch_objects() == (0, None, None)
    assert len(stored_rows(kb, table)) == 4  # the documents stay

    execute(kb.url, f"DELETE FROM {table} WHERE id = 1")
    synced, = kb.sync()
    assert (synced.mode, synced.watching, synced.report.deleted) == ("read", False, 1)


def test_source_in_another_database_never_stores_its_password(kb, schema, settings):
    database = f"src_{schema}"
    with psycopg.connect(kb.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    host = psycopg.conninfo.conninfo_to_dict(kb.url)["host"]
    # the embedded server trusts local connections, so any password works: what matters is where it ends up
    url = f"postgresql://postgres:s3cret-pw@/{database}?host={host}"
    table = make_source(url, "support", 3)

    result = kb.ingest_table(table, id_column="id", text_columns=["body"], source_url=url, watch=True)
    assert result.report.added == 3
    with kb.connection() as conn:
        dump = conn.execute(f"SELECT t::text FROM {kb.schema}.table_sources t").fetchone()[0]
        assert conn.execute("SELECT to_regclass(%s)", (f"{kb.schema}.table_changes",)).fetchone()[0] is None
    assert "s3cret-pw" not in dump and "***" in dump

    execute(url, f"UPDATE {table} SET body = 'The monitor arm snapped off the desk.' WHERE id = 2")
    with pytest.raises(PgaskError, match="give the full URL with --source-url or PGASK_SOURCE_URL"):
        kb.sync()
    with KnowledgeBase(settings, source_url=url) as again:
        synced, = again.sync()
        assert (synced.mode, synced.changes, synced.report.updated) == ("changes", 1, 1)
        again.unwatch_table(table)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regnamespace(%s)", (kb.schema,)).fetchone()[0] is None
    assert_matches_table(kb, TableSpec(table, "id", ("body",)), url)


def test_a_spent_budget_leaves_unembedded_changes_queued(settings, serve, schema):
    """With an embeddings API and a budget, rows the budget did not cover stay in the queue."""
    api = serve(1536)
    with remote_kb(settings, api) as kb:
        table = make_source(kb.url, f"src_{schema}", 3)
        kb.ingest_table(table, id_column="id", text_columns=["body"], watch=True)
        execute(kb.url, f"UPDATE {table} SET body = 'The laptop hinge broke.' WHERE id = 1",
                f"INSERT INTO {table} (id, subject, body, status) VALUES (9, 'Lamp', 'The desk lamp flickers.', 'open')")
        before = stored_rows(kb, table)
    with remote_kb(settings, api, max_cost_usd=0.0) as broke:
        stopped, = broke.sync()
        assert (stopped.changes, stopped.report.added, stopped.report.updated) == (0, 0, 0)
        assert sorted(stopped.report.remaining) == [f"table:{table}/1", f"table:{table}/9"]
        assert broke.status().table_sources[0].pending == 2
        assert stored_rows(broke, table) == before
    with remote_kb(settings, api) as kb:
        resumed, = kb.sync()
        assert (resumed.changes, resumed.report.added, resumed.report.updated) == (2, 1, 1)
        assert kb.status().table_sources[0].pending == 0
        assert_matches_table(kb, TableSpec(table, "id", ("body",)))


# --- refusals --------------------------------------------------------------------------------------------


def test_malicious_names_and_predicates_are_refused_and_nothing_changes(kb, schema):
    table = make_source(kb.url, f"src_{schema}", 5)
    execute(kb.url, f"CREATE SEQUENCE src_{schema}.counter",
            f"CREATE FUNCTION src_{schema}.wipe() RETURNS boolean LANGUAGE plpgsql AS "
            f"$$ BEGIN DELETE FROM {table}; RETURN true; END $$")
    kb.ingest_table(table, id_column="id", text_columns=["body"])
    with kb.connection() as conn:
        definition = conn.execute(f"SELECT t::text FROM {kb.schema}.table_sources t").fetchall()

    attempts = [
        (dict(text_columns=[f"body; DROP TABLE {table}"]), "has no column 'body; DROP TABLE"),
        (dict(id_column='id" OR 1=1 --'), "has no column"),
        (dict(title_column="subject)::text FROM pg_authid --"), "has no column"),
        (dict(metadata_columns=["table"]), "reserved"),
        (dict(table=f"{table}; DROP TABLE {table}"), "is not a table name"),
        (dict(where=f"true; DELETE FROM {table}"), "semicolons are not allowed"),
        (dict(where="true) OR (true"), "does not parse"),
        (dict(where="true UNION SELECT 1, 'x', 'x'"), "reaches beyond the condition"),
        (dict(where="true ORDER BY 1"), "reaches beyond the condition"),
        (dict(where="id > 0 /* hidden */"), "comments are not allowed"),
        (dict(where=f"src_{schema}.wipe()"), "read-only transaction"),
        (dict(where=f"nextval('src_{schema}.counter') > 0"), "read-only transaction"),
        (dict(where="(WITH gone AS (DELETE FROM pg_class RETURNING 1) SELECT true)"), "failed"),
    ]
    for options, message in attempts:
        arguments = {"table": table, "id_column": "id", "text_columns": ["body"], **options}
        with pytest.raises(PgaskError, match=message.replace("(", r"\(").replace(")", r"\)")):
            kb.ingest_table(arguments.pop("table"), watch=True, **arguments)

    with psycopg.connect(kb.url) as conn:
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 5
        assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass", (table,)).fetchone()[0] == 0
        assert conn.execute(f"SELECT t::text FROM {kb.schema}.table_sources t").fetchall() == definition
    assert len(stored_rows(kb, table)) == 5


def test_cli_table_errors_are_one_line_and_usage_errors_exit_2(cli_env, kb, schema):
    table = make_source(kb.url, f"src_{schema}", 2)
    runner = CliRunner()

    def run(*args):
        return runner.invoke(app, list(args), env=cli_env)

    refused = run("ingest", "--table", table, "--id", "id", "--text", "body", "--where", "1=1; DROP TABLE x")
    assert refused.exit_code == 1 and refused.stderr.strip().startswith("Error: --where must be a single SQL condition")
    assert len(refused.stderr.strip().splitlines()) == 1
    missing = run("ingest", "--table", table)
    assert missing.exit_code == 1 and "give --id and --text" in missing.stderr
    assert run("ingest", "--id", "id").exit_code == 2
    assert run("ingest", "docs", "--table", table).exit_code == 2
    assert run("sync", "--every", "soon").exit_code == 2
    assert "no table sources yet" in run("sync").stderr

    added = run("ingest", "--table", table, "--id", "id", "--text", "body", "--watch", "--json")
    assert added.exit_code == 0, added.output
    data = json.loads(added.stdout)
    assert (data["table"], data["added"], data["watching"]) == (table, 2, True)
    synced = json.loads(run("sync", "--json").stdout)
    assert synced["tables"][0]["mode"] == "changes"
    unwatched = json.loads(run("ingest", "--table", table, "--unwatch", "--json").stdout)
    assert unwatched == {"table": table, "watching": False}
    assert "(whole table read)" in run("sync").stdout


# --- streaming --------------------------------------------------------------------------------------------


def test_reader_streams_200k_rows_in_bounded_memory(kb, schema):
    """The reader holds one batch of rows at a time: a server-side cursor, not a result set in memory.

    Holding all 200,000 rows as documents takes over 100 MB of Python objects; streamed, the
    peak is the size of one batch (about 1 MB here), whatever the table's size.
    """
    table = f"src_{schema}.big"
    execute(kb.url, f"CREATE SCHEMA src_{schema}", f"CREATE TABLE {table} (id bigint PRIMARY KEY, body text)",
            f"INSERT INTO {table} SELECT g, 'Row ' || g || ' of a large table, with a few more words.' "
            "FROM generate_series(1, 200000) AS g")
    with connect(kb.url, vector=False) as conn:
        reader = row_reader(conn, TableSpec(table, "id", ("body",)))
        documents = read_documents(conn, reader, batch_rows=1000)
        tracemalloc.start()
        try:
            first = next(documents)
            cursors = conn.execute("SELECT name FROM pg_cursors").fetchall()
            count = 1 + sum(1 for _ in documents)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert first.text.startswith("Row ") and count == 200_000
    assert cursors == [("pgask_table_rows",)]
    assert peak < 10_000_000, f"peak {peak / 1e6:.1f} MB while reading"


# --- periodic sync ------------------------------------------------------------------------------------------


def test_sync_every_applies_changes_each_round_and_stops_on_ctrl_c(cli_env, kb, schema):
    table = make_source(kb.url, f"src_{schema}", 3)
    kb.ingest_table(table, id_column="id", text_columns=["body"], watch=True)
    env = {**os.environ, **cli_env}
    proc = subprocess.Popen([sys.executable, "-c", "from pgask.cli import app; app()", "sync", "--every", "1s", "--json"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rounds = selectors.DefaultSelector()
    rounds.register(proc.stdout, selectors.EVENT_READ)

    def next_round() -> dict:
        assert rounds.select(timeout=180), "no sync round within 3 minutes"
        return json.loads(proc.stdout.readline())["tables"][0]

    try:
        assert next_round()["changes"] == 0
        # a deletion needs no embedding, so the rounds never wait for the model to load
        execute(kb.url, f"DELETE FROM {table} WHERE id = 2")
        deadline = time.monotonic() + 60
        while (latest := next_round())["deleted"] == 0:
            assert time.monotonic() < deadline
        assert (latest["mode"], latest["changes"], latest["deleted"]) == ("changes", 1, 1)
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "stopped" in stderr
    assert set(stored_rows(kb, table)) == {"1", "4211"}
