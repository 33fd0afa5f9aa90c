"""What the PL/Python functions of plpython.sql run inside the database server.

`pgask.get_embeddings(text)`, `pgask.get_embeddings_array(text)` and `pgask.ask(question)` call
these with PL/Python's `plpy` (queries in the caller's own session and transaction, so no
connection URL or password is needed) and `GD` (a dictionary that lives as long as the database
backend, where the embedder is kept so each backend loads its model once). Settings come from
the server process's environment and from a pgask.toml in its working folder (the data
directory), as for any pgask process; the embedding model is the one the knowledge base in this
database was built with.
"""

from __future__ import annotations

import json

from . import rerank as reranking
from .answer import compose
from .answerability import code_terms
from .config import load_settings
from .embed import Embedder, configured_embedder
from .errors import PgaskError
from .search import HYBRID_CANDIDATES, SEARCH_ARGUMENTS, SEARCH_CALLS, SEARCH_COLUMNS, Hit, check_mode

# The passages pgask ask would use, by the knowledge base's search mode: the SQL functions and
# arguments kb.search calls (search.SEARCH_CALLS), as $n parameters of a prepared plan. The metadata
# comes as text: PL/Python hands jsonb over as a string unless a transform is installed.
PLACEHOLDERS = {name: f"${n}" for n, name in enumerate(SEARCH_ARGUMENTS, 1)}
TYPES = {"query": "text", "embedding": "vector", "k": "integer", "filter": "jsonb", "source": "text",
         "metric": "text", "candidates": "integer"}
SEARCH = "SELECT " + SEARCH_COLUMNS.replace("metadata", "metadata::text AS metadata") + " FROM {s}.{call}"


def _built_with(plpy, schema: str) -> str | None:
    """The embedding model of the knowledge base in `schema`, or None where this database has none."""
    table = f"{plpy.quote_ident(schema)}.settings"
    if plpy.execute(f"SELECT to_regclass({plpy.quote_literal(table)}) IS NULL AS missing")[0]["missing"]:
        return None
    rows = plpy.execute(f"SELECT value->>'model' AS model FROM {table} WHERE key = 'embedding'")
    return rows[0]["model"] if rows else None


def _embedder(GD: dict, model: str | None) -> Embedder:
    settings = load_settings()
    name = model or settings.embed_model
    cache = GD.setdefault("pgask", {})
    if ("embedder", name) not in cache:
        cache[("embedder", name)] = configured_embedder(settings, model=name)
    return cache[("embedder", name)]


def embedding(plpy, GD: dict, schema: str, text: str) -> list[float]:
    """The vector of `text` by the knowledge base's model (the configured one where there is no knowledge base)."""
    try:
        vector = _embedder(GD, _built_with(plpy, schema)).embed_query(text)
    except PgaskError as exc:
        plpy.error(str(exc))
    return [float(x) for x in vector]


def vector_literal(values: list[float]) -> str:
    """pgvector's text form; PL/Python hands a scalar result to the type's input function as text."""
    return "[" + ",".join(repr(x) for x in values) + "]"


def _unmentioned(plpy, GD: dict, schema: str, terms: list[str]) -> list[str]:
    """Those of `terms` no chunk contains (unmentioned_terms in search.sql), as Asker.unmentioned."""
    if not terms:
        return []
    cache = GD.setdefault("pgask", {})
    if ("unmentioned", schema) not in cache:
        statement = f"SELECT {plpy.quote_ident(schema)}.unmentioned_terms($1) AS missing"
        cache[("unmentioned", schema)] = plpy.prepare(statement, ["text[]"])
    return list(plpy.execute(cache[("unmentioned", schema)], [terms])[0]["missing"])


def ask(plpy, GD: dict, schema: str, question: str) -> list[tuple[str, str, str]]:
    """One row (answer, mode, sources as JSON) answering `question` from this database's knowledge base."""
    try:
        model = _built_with(plpy, schema)
        if model is None:
            raise PgaskError(f"this database has no pgask knowledge base in schema {schema}: "
                             "run `pgask ingest PATH` with PGASK_DATABASE_URL pointing at it first")
        if not question.strip():
            raise PgaskError("the question is empty")
        settings = load_settings()
        embedder = _embedder(GD, model)
        vector = embedder.embed_query(question)
        cache = GD.setdefault("pgask", {})
        mode = check_mode(settings.search_mode)
        if ("search", schema, mode) not in cache:
            statement = SEARCH.format(s=plpy.quote_ident(schema), call=SEARCH_CALLS[mode].format(**PLACEHOLDERS))
            cache[("search", schema, mode)] = plpy.prepare(statement, [TYPES[name] for name in SEARCH_ARGUMENTS])

        def fetch(depth: int) -> list[Hit]:
            arguments = {"query": question, "embedding": vector_literal([float(x) for x in vector]), "k": depth,
                         "filter": "{}", "source": None, "metric": "cosine", "candidates": HYBRID_CANDIDATES}
            rows = plpy.execute(cache[("search", schema, mode)], [arguments[name] for name in SEARCH_ARGUMENTS])
            return [Hit(r["document_id"], r["chunk_id"], r["source"], r["title"], r["heading"], r["content"],
                        r["similarity"], r["score"], metadata=json.loads(r["metadata"])) for r in rows]

        hits = reranking.retrieve(settings, question, settings.top_k, fetch)
        result = compose(question, vector, hits, embed=embedder.embed_documents, settings=settings,
                         unmentioned=_unmentioned(plpy, GD, schema, code_terms(question)))
    except PgaskError as exc:
        plpy.error(str(exc))
    return [(result.answer, result.mode, json.dumps(result.as_dict()["sources"]))]
