"""Retrieval: the chunks that best answer a question (the ANN indexes are in indexes.py).

Three modes, each one SQL function in the database (db/sql/search.sql), so that SQL users get
what pgask shows: `vector` (nearest embeddings), `keyword` (BM25 over the chunks' tsvector) and
`hybrid` (both, fused by reciprocal rank). Every mode can be restricted to documents whose
metadata contains a JSON object and whose source starts with a prefix.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Sequence

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from . import korean
from .db.schema import render
from .errors import PgaskError

if TYPE_CHECKING:  # numpy loads on first use: commands that embed nothing (`pgask status`) never import it
    import numpy as np

# metric -> pgvector operator; the operator class is {column type}_{metric}_ops (vector_cosine_ops, halfvec_l2_ops ...)
METRICS = {
    "cosine": "<=>",
    "l2": "<->",
    "ip": "<#>",
}
MODES = ("vector", "keyword", "hybrid")
# Hybrid search fuses the top HYBRID_CANDIDATES (or k, if more) of each ranking: the window
# Elasticsearch's reciprocal rank fusion uses by default.
HYBRID_CANDIDATES = 100


@dataclass
class Hit:
    document_id: int
    chunk_id: int
    source: str
    title: str
    heading: str
    content: str
    similarity: float  # cosine similarity to the question, whatever the mode and metric
    score: float | None = None  # the mode's own score (similarity, BM25, reciprocal rank fusion), or relevance
    # keyword-only, so that subclasses (api.Source) may add fields without defaults
    metadata: dict = field(default_factory=dict, kw_only=True)
    # the re-ranker's probability that the passage answers the question (None: not re-ranked)
    relevance: float | None = field(default=None, kw_only=True)

    @property
    def table_row(self) -> str | None:
        """"support.tickets #4211" when the passage comes from a table row (pgask ingest --table)."""
        if self.source.startswith("table:") and {"table", "row_id"} <= self.metadata.keys():
            return f"{self.metadata['table']} #{self.metadata['row_id']}"
        return None

    def cited_as(self, source: str | None = None) -> str:
        """How answers and source lists name the passage, the one rule for every front end:
        "docs/guide.md › Install", "support.tickets #4211 › Printer" for a table row. `source`:
        the document's name as the front end shows it (default: as stored)."""
        name = self.table_row or source or self.source
        return f"{name} › {self.heading}" if self.heading else name

    def as_dict(self) -> dict:
        return dict(asdict(self), table_row=self.table_row)


def source_prefix(prefix: str | None) -> str | None:
    """A source prefix as stored: a relative path made absolute (from the current folder, as the
    CLI and the UI take it), a prefix of other sources (table:, beir:) or an absolute one as given."""
    if not prefix or re.match(r"^[A-Za-z][\w+.-]*:", prefix):
        return prefix or None
    resolved = os.path.abspath(os.path.expanduser(prefix))
    return resolved + "/" if prefix.endswith("/") and resolved != "/" else resolved


def metadata_filter(value: dict | Sequence[str] | None) -> dict | None:
    """A metadata filter as the JSON object documents' metadata must contain: a dict as given, or
    KEY=VALUE pairs (the CLI's --filter), VALUE read as JSON when it parses as JSON, else as text."""
    if value is None or isinstance(value, dict):
        return value or None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise PgaskError("a metadata filter must be a JSON object, such as {\"format\": \"pdf\"}")
    wanted: dict = {}
    for pair in value:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise PgaskError(f"{pair!r} is not KEY=VALUE")
        if key in wanted:
            raise PgaskError(f"{key!r} is given twice; for several values give a JSON array, {key}='[\"a\", \"b\"]'")
        try:
            wanted[key] = json.loads(text)
        except json.JSONDecodeError:
            wanted[key] = text
    return wanted or None


@dataclass(frozen=True)
class Selection:
    """Which passages a search or an answer may read: the search mode, documents whose metadata
    contains `filter`, documents whose source starts with `source`. Every front end hands over what
    its user gave (a mode or none, KEY=VALUE pairs or an object, a relative or absolute prefix);
    `Selection.of` normalises it, once, inside KnowledgeBase.search and ask."""

    mode: str
    filter: dict | None = None
    source: str | None = None

    @classmethod
    def of(cls, *, mode: str | None = None, filter: dict | Sequence[str] | None = None,
           source: str | None = None, default_mode: str = "hybrid") -> "Selection":
        return cls(check_mode(mode or default_mode), metadata_filter(filter), source_prefix(source))


# Each search mode's SQL function (db/sql/search.sql), with its arguments by name: search() binds them
# as %(name)s, the in-database ask (in_database.py) as $n placeholders of a prepared plan.
SEARCH_CALLS = {
    "vector": "vector_search({embedding}, {k}, {filter}, {source}, {metric})",
    "keyword": "keyword_search({query}, {k}, {filter}, {source}, {embedding})",
    "hybrid": "hybrid_search({query}, {embedding}, {k}, candidates => {candidates}, "
              "filter => {filter}, source_prefix => {source}, metric => {metric})",
}
SEARCH_ARGUMENTS = ("query", "embedding", "k", "filter", "source", "metric", "candidates")
SEARCH_COLUMNS = "document_id, chunk_id, source, title, heading, content, similarity, score, metadata"


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise PgaskError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
    return METRICS[metric]


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise PgaskError(f"unknown search mode {mode!r}: use one of {', '.join(MODES)}")
    return mode


DEFAULT_PROBES = 10


def default_ef_search(k: int) -> int:
    """pgvector's default candidate list (40), widened for large k: HNSW returns at most ef_search rows."""
    return max(40, 2 * k)


def search(
    conn: psycopg.Connection,
    schema: str,
    query: str,
    embedding: np.ndarray,
    *,
    mode: str = "hybrid",
    k: int = 5,
    metric: str = "cosine",
    threshold: float | None = None,
    filter: dict | None = None,
    source: str | None = None,
    ef_search: int | None = None,
    probes: int | None = None,
    exact: bool = False,
) -> list[Hit]:
    """The k best chunks for `query` (text) / `embedding` (its vector), best first.

    `filter` keeps documents whose metadata contains it (jsonb @>), `source` those whose source
    starts with it; `threshold` drops hits below that cosine similarity. `ef_search` (HNSW) and
    `probes` (IVFFlat) trade speed for recall; `exact` ignores ANN indexes and compares with
    every chunk (the reference that recall is measured against).
    """
    check_mode(mode)
    check_metric(metric)
    filter = metadata_filter(filter)
    # a Korean question's morphemes join its words, as each chunk's join its tsvector (korean.py)
    query = korean.query_text(query) if mode != "vector" else query
    import numpy as np

    params = {"query": query, "embedding": np.asarray(embedding, dtype=np.float32), "k": k,
              "filter": Jsonb(filter or {}), "source": source or None, "metric": metric,
              "candidates": HYBRID_CANDIDATES}
    call = SEARCH_CALLS[mode].format(**{name: f"%({name})s" for name in SEARCH_ARGUMENTS})
    statement = sql.SQL(f"SELECT {SEARCH_COLUMNS} FROM {{}}." + call).format(sql.Identifier(schema))
    depth = max(k, HYBRID_CANDIDATES) if mode == "hybrid" else k
    # HNSW returns at most ef_search rows per scan. Hybrid's candidate list needs ef_search >= its
    # depth, no more: the planner prices an HNSW scan by ef_search, and at 2 x 100 it prefers
    # reading every chunk (45 ms instead of 5 on gpdb-docs).
    tuning = {"depth": depth, "ef_search": ef_search, "default_ef_search": default_ef_search(k), "probes": probes,
              "default_probes": DEFAULT_PROBES, "exact": exact, "metric": metric,
              "filtered": bool(filter) or bool(source)}
    with conn.transaction():
        conn.execute(render("search_settings.sql", schema), tuning)
        rows = conn.execute(statement, params).fetchall()
    hits = [Hit(*row[:8], metadata=row[8]) for row in rows]
    if threshold is not None:
        hits = [h for h in hits if h.similarity >= threshold]
    return hits


def unmentioned(conn: psycopg.Connection, schema: str, terms: Sequence[str]) -> list[str]:
    """Those of `terms` that no chunk of the knowledge base contains (unmentioned_terms in SQL)."""
    if not terms:
        return []
    statement = sql.SQL("SELECT {}.unmentioned_terms(%s)").format(sql.Identifier(schema))
    return list(conn.execute(statement, (list(terms),)).fetchone()[0])
