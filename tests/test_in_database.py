"""pgask.ask's Python side (pgask/in_database.py) against the embedded server, which has pgvector
but no PL/Python: `plpy` is played by a thin adapter that runs each query on a real psycopg
connection, as PL/Python runs it in the caller's session. The PL/Python wiring itself is tested
on a real plpython3u server in test_plpython.py."""

import json
import re

import psycopg
import pytest
from psycopg import sql

from pgask.in_database import ask, embedding


class Plpy:
    """The parts of PL/Python's plpy module that pgask.in_database uses, over one psycopg connection."""

    class Error(Exception):
        pass

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def quote_ident(self, name: str) -> str:
        return sql.Identifier(name).as_string(self.conn)

    def quote_literal(self, value: str) -> str:
        return sql.Literal(value).as_string(self.conn)

    def prepare(self, query: str, types: list[str]) -> tuple[str, list[str]]:
        return query, types

    def execute(self, query, args=()):
        text, types = query if isinstance(query, tuple) else (query, [])
        text = re.sub(r"\$(\d+)", lambda m: f"%(p{m.group(1)})s::{types[int(m.group(1)) - 1]}", text)
        cursor = self.conn.cursor(row_factory=psycopg.rows.dict_row)
        return cursor.execute(text, {f"p{n}": value for n, value in enumerate(args, 1)}).fetchall()

    def error(self, message: str):
        raise self.Error(message)


@pytest.fixture
def plpy(kb):
    with kb.connection() as conn:
        yield Plpy(conn)


def test_ask_in_the_database_answers_as_pgask_ask(kb, corpus, plpy):
    kb.ingest([corpus])
    question = "How often should tomato plants be watered?"
    GD: dict = {}
    [(answer, mode, sources)] = ask(plpy, GD, kb.schema, question)
    expected = kb.ask(question)
    assert (answer, mode) == (expected.answer, "extractive")
    assert json.loads(sources) == json.loads(json.dumps(expected.as_dict()["sources"]))
    assert json.loads(sources)[0]["source"].endswith("garden.md")
    assert list(GD["pgask"]) == [("embedder", kb.embedder.name), ("search", kb.schema, "hybrid")]  # no code names

    unrelated = "Who won the football world cup in 1966?"
    [(_, mode, sources)] = ask(plpy, GD, kb.schema, unrelated)
    # mode none, with the passages it looked at, as pgask ask gives it
    assert (mode, json.loads(sources)) == ("none", json.loads(json.dumps(kb.ask(unrelated).as_dict()["sources"])))

    # a name written as code that no document mentions: refused, naming it, as pgask ask does
    unknown = "how do I set up pg_stat_statements for these plants?"
    [(answer, mode, _)] = ask(plpy, GD, kb.schema, unknown)
    assert (mode, answer) == ("none", kb.ask(unknown).answer) and "`pg_stat_statements`" in answer

    # get_embeddings: the knowledge base's model
    assert embedding(plpy, GD, kb.schema, "lettuce") == pytest.approx(kb.embedder.embed_query("lettuce").tolist(), abs=1e-6)


def test_errors_reach_sql_as_plpy_errors(kb, plpy):
    with pytest.raises(Plpy.Error, match=f"no pgask knowledge base in schema {kb.schema}.*pgask ingest"):
        ask(plpy, {}, kb.schema, "anything")
