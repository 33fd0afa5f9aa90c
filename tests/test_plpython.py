"""The PL/Python functions on a real server with plpython3u: Debian's PostgreSQL 15 with
postgresql-plpython3-15 (installed by .ci/run), started by the test in a folder of its own.
Debian 12 has no pgvector package for it, so the real[] variant is the one tested here; the
server imports pgask from this test's environment through PYTHONPATH, as it would import the
pgask package installed on a database host."""

import sysconfig
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg import sql

import pgask
from pgask.db.schema import render
from pgask.embed import get_embedder

from .postgres_server import PostgresServer

PG15 = Path("/usr/lib/postgresql/15")

pytestmark = pytest.mark.skipif(
    not (PG15 / "bin" / "postgres").exists() or not (PG15 / "lib" / "plpython3.so").exists(),
    reason="needs Debian's postgresql-15 and postgresql-plpython3-15 (.ci/run installs them: "
           "apt-get install postgresql-15 postgresql-plpython3-15)",
)

SCHEMA = "kb"


@pytest.fixture(scope="module")
def server():
    paths = [sysconfig.get_paths()["purelib"], str(Path(pgask.__file__).resolve().parents[1])]
    # PATH as on a database host: with an activated virtualenv first on PATH, the server's embedded
    # Python takes that venv's base interpreter's standard library, built for another libpython
    # (CI: pyenv's 3.11.7 beside Debian's 3.11.2, "undefined symbol: _PyModule_Add" on import ssl)
    env = {"PYTHONPATH": ":".join(paths), "PGASK_EMBED_MODEL": "", "PATH": "/usr/bin:/bin"}
    pg = PostgresServer(PG15 / "bin", env=env,
                        reads=tuple(paths)).start()
    yield pg
    pg.stop()


@pytest.fixture(scope="module")
def installed(server):
    with psycopg.connect(server.url, autocommit=True) as conn:
        notices = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
        conn.execute(render("plpython.sql", SCHEMA, schema_name=SCHEMA))
    return notices


def test_functions_install_where_plpython3u_is_available(server, installed):
    assert installed == []
    with psycopg.connect(server.url) as conn:
        def exists(signature):
            return conn.execute("SELECT to_regprocedure(%s) IS NOT NULL", (f"{SCHEMA}.{signature}",)).fetchone()[0]
        assert exists("get_embeddings_array(text)") and exists("ask(text)")
        assert not exists("get_embeddings(text)")  # returns vector: only where pgvector is installed


def test_get_embeddings_array_is_the_model_vector_and_the_model_loads_once(server, installed):
    text = "How often should tomato plants be watered?"
    with psycopg.connect(server.url) as conn:
        first = np.array(conn.execute(f"SELECT {SCHEMA}.get_embeddings_array(%s)", (text,)).fetchone()[0])
        conn.execute("CREATE FUNCTION pg_temp.loaded() RETURNS text LANGUAGE plpython3u AS "
                     "$$ return repr(sorted((key, id(value)) for key, value in GD['pgask'].items())) $$")
        loaded = conn.execute("SELECT pg_temp.loaded()").fetchone()[0]
        again = np.array(conn.execute(f"SELECT {SCHEMA}.get_embeddings_array('lettuce')").fetchone()[0])
        assert conn.execute("SELECT pg_temp.loaded()").fetchone()[0] == loaded  # the same embedder object
    assert "('embedder', 'sentence-transformers/all-MiniLM-L6-v2')" in loaded
    assert first.shape == (384,) and again.shape == (384,)
    assert np.linalg.norm(first) == pytest.approx(1.0, abs=1e-4)
    expected = get_embedder("sentence-transformers/all-MiniLM-L6-v2").embed_query(text)
    assert np.allclose(first, expected, atol=1e-5)


def test_ask_without_a_knowledge_base_is_a_clear_error(server, installed):
    with psycopg.connect(server.url) as conn:
        with pytest.raises(psycopg.Error, match="no pgask knowledge base in schema kb"):
            conn.execute(f"SELECT * FROM {SCHEMA}.ask('How do I water tomatoes?')")


def test_a_role_that_may_not_use_plpython_gets_a_notice_not_an_error(server, installed):
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute("CREATE ROLE analyst LOGIN PASSWORD 'analyst-pw'")
        conn.execute("CREATE SCHEMA analyst AUTHORIZATION analyst")
    url = f"postgresql://analyst:analyst-pw@127.0.0.1:{server.port}/postgres"
    with psycopg.connect(url, autocommit=True) as conn:
        notices = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        conn.execute(render("plpython.sql", "analyst", schema_name="analyst"))
        notices = [n for n in notices if n.startswith("pgask:")]
        assert conn.execute("SELECT to_regprocedure('analyst.ask(text)')").fetchone()[0] is None
    assert len(notices) == 1 and "are not installed: permission denied" in notices[0]


@pytest.mark.skipif(not (PG15 / "lib" / "vector.so").exists(),
                    reason="needs pgvector built for PostgreSQL 15 (scripts/citus-cluster.sh build, run by .ci/run)")
def test_ask_answers_in_the_database_and_refuses_names_no_document_mentions(server, installed, tmp_path):
    from pgask.config import Settings
    from pgask.kb import KnowledgeBase

    from .helpers import write

    write(tmp_path / "docs" / "garden.md", """
        # Watering

        Tomato plants are watered two or three times a week, deeply, at the base of the plant.
        """)
    with KnowledgeBase(Settings(home=tmp_path / "home", database_url=server.url, schema="garden")) as kb:
        kb.ingest([tmp_path / "docs"])
    with psycopg.connect(server.url) as conn:
        answer, mode = conn.execute("SELECT answer, mode FROM garden.ask('How often are tomato plants watered?')").fetchone()
        assert mode == "extractive" and "two or three times a week" in answer
        # the names are looked up by the real PL/Python: a text[] argument and result through plpy
        answer, mode = conn.execute("SELECT answer, mode FROM garden.ask('how do I water them with pg_stat_statements?')"
                                    ).fetchone()
        assert mode == "none" and answer.endswith("They never mention `pg_stat_statements`.")
