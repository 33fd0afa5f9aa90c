"""Query vectors of remote embedding models, kept in the database under a hash of the query text.

In the database rather than in the process: each `pgask ask` is a process of its own, and the
CLI, the HTTP API and the UI all share one knowledge base. A primary-key lookup costs well under
a millisecond; the API call it saves costs a round trip and money. Only the hash of a query is
stored, never its text.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

if TYPE_CHECKING:  # numpy loads on first use: commands that embed nothing (`pgask status`) never import it
    import numpy as np


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def get(conn: psycopg.Connection, schema: str, model: str, text: str) -> np.ndarray | None:
    row = conn.execute(
        sql.SQL("SELECT embedding FROM {}.query_cache WHERE model = %s AND text_hash = %s").format(sql.Identifier(schema)),
        (model, text_hash(text)),
    ).fetchone()
    import numpy as np

    return None if row is None else row[0].to_numpy().astype(np.float32)


def put(conn: psycopg.Connection, schema: str, model: str, text: str, vector: np.ndarray) -> None:
    import numpy as np

    conn.execute(
        sql.SQL(
            "INSERT INTO {}.query_cache (model, text_hash, embedding) VALUES (%s, %s, %s) "
            "ON CONFLICT (model, text_hash) DO NOTHING"
        ).format(sql.Identifier(schema)),
        (model, text_hash(text), np.asarray(vector, dtype=np.float32)),
    )
    conn.commit()
