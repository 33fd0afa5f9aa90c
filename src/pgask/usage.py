"""The usage ledger: one row per model call (embedding or chat), with tokens, latency and cost."""

from __future__ import annotations

import psycopg
from psycopg import sql


def record(
    conn: psycopg.Connection,
    schema: str,
    *,
    kind: str,
    provider: str,
    model: str,
    tokens_in: int = 0,
    tokens_out: int = 0,
    latency_ms: float | None = None,
    cost_usd: float = 0.0,
    cached: bool = False,
) -> None:
    conn.execute(
        sql.SQL(
            "INSERT INTO {}.usage (kind, provider, model, tokens_in, tokens_out, latency_ms, cost_usd, cached) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        ).format(sql.Identifier(schema)),
        (kind, provider, model, tokens_in, tokens_out, latency_ms, cost_usd, cached),
    )
    conn.commit()
