"""Query vectors through the knowledge base's query cache: a billed embeddings API is asked once per
question text, for every process that shares the knowledge base (db/query_cache.py); a local model,
free and fast, is asked directly."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable

from ..db import query_cache
from ..usage import Call
from . import Embedder

if TYPE_CHECKING:  # numpy loads on first use: commands that embed nothing (`pgask status`) never import it
    import numpy as np


class CachedQueries:
    def __init__(self, embedder: Callable[[], Embedder], connection: Callable, schema: str, ledger: Callable):
        self.embedder, self.connection, self.schema, self.ledger = embedder, connection, schema, ledger

    def embed_query(self, text: str) -> np.ndarray:
        """The query's vector: a billed model's from the cache when it was asked before (a cached call
        in the ledger, costing nothing), else asked and cached."""
        emb = self.embedder()
        if not emb.billed:
            return emb.embed_query(text)
        started = time.perf_counter()
        with self.connection() as conn:
            vector = query_cache.get(conn, self.schema, emb.name, text)
        if vector is not None:
            latency_ms = round((time.perf_counter() - started) * 1000, 1)
            described = emb.describe()
            self.ledger().record(Call(kind="embed_query", provider=described["provider"], model=described["model"],
                                      latency_ms=latency_ms, cached=True))
            return vector
        vector = emb.embed_query(text)  # recorded in the ledger by the embedder
        with self.connection() as conn:
            query_cache.put(conn, self.schema, emb.name, text, vector)
        return vector
