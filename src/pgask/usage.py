"""The usage ledger: one row per model call (embedding or chat), with tokens, latency and cost.

Calls to model APIs are recorded, and so are query embeddings answered from the cache
(cached = true, no tokens). Local models are not: they cost nothing and have no limits, and
counting their tokens would slow every ingest and query for no information a user can act on.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager

import sys
import threading
from dataclasses import asdict, dataclass, replace
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Callable, Iterator, Sequence

import psycopg
from psycopg import sql

from .errors import PgaskError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Call:
    """One model call, as the ledger stores it."""

    kind: str  # embed_documents | embed_query | embed_probe | chat
    provider: str  # openai | ollama | openai-compatible
    model: str  # the model name sent to the API
    tokens_in: int = 0  # as the API reported them (estimated only where it reports none)
    tokens_out: int = 0
    latency_ms: float | None = None
    cached: bool = False
    cost_usd: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


class Prices:
    """US dollars per million tokens, by model: the packaged table, extended by the user's file."""

    def __init__(self, models: dict[str, dict]):
        self.models = models

    @classmethod
    def load(cls, override: Path | None = None) -> "Prices":
        packaged = resources.files("pgask").joinpath("data", "prices.toml").read_text(encoding="utf-8")
        models = dict(tomllib.loads(packaged)["models"])
        if override is not None:
            try:
                extra = tomllib.loads(Path(override).read_text(encoding="utf-8"))
            except OSError as exc:
                raise PgaskError(f"cannot read the prices file {override}: {exc.strerror} (check PGASK_PRICES_FILE)") from exc
            except tomllib.TOMLDecodeError as exc:
                raise PgaskError(f"the prices file {override} is not valid TOML: {exc}") from exc
            for model, price in (extra.get("models") or {}).items():
                if not isinstance(price, dict) or not all(
                    isinstance(price.get(k, 0), (int, float)) for k in ("input", "output")
                ):
                    raise PgaskError(f"the prices file {override} has a bad entry for {model!r}: "
                                     'write [models."NAME"] with input = and output = in USD per million tokens')
                models[model] = price
        return cls(models)

    def cost(self, model: str, tokens_in: int, tokens_out: int = 0) -> float:
        price = self.models.get(model) or {}
        return (tokens_in * price.get("input", 0) + tokens_out * price.get("output", 0)) / 1_000_000


_collecting: contextvars.ContextVar[list | None] = contextvars.ContextVar("pgask_usage_collecting", default=None)


class Ledger:
    """The model calls of one knowledge base: priced, written to its usage table, totalled.

    Calls made before the knowledge base exists (a dimension probe while creating it) are held
    and written once `open` is called.
    """

    def __init__(self, connect: Callable, schema: str, prices: Prices):
        self.connect = connect
        self.schema = schema
        self.prices = prices
        self._lock = threading.Lock()
        self._held: list[Call] | None = []  # None once the usage table exists
        self._spent: dict[str, float] = {}  # cost by kind, this process
        self._tokens: dict[str, int] = {}

    def record(self, call: Call) -> Call:
        """Price the call, write it (or hold it until `open`), and return it priced."""
        if not call.cached:
            call = replace(call, cost_usd=round(self.prices.cost(call.model, call.tokens_in, call.tokens_out), 10))
        collected = _collecting.get()
        if collected is not None:
            collected.append(call)
        with self._lock:
            self._spent[call.kind] = self._spent.get(call.kind, 0.0) + call.cost_usd
            self._tokens[call.kind] = self._tokens.get(call.kind, 0) + call.tokens_in + call.tokens_out
            if self._held is not None:
                self._held.append(call)
                return call
        self._write([call])
        return call

    @staticmethod
    @contextmanager
    def collect() -> Iterator[list[Call]]:
        """`with ledger.collect() as calls:` every call recorded meanwhile in this context (and in the
        threads an embedder starts for it) is also appended to `calls`: the cost of one answer."""
        calls: list[Call] = []
        token = _collecting.set(calls)
        try:
            yield calls
        finally:
            _collecting.reset(token)

    def open(self) -> None:
        """The usage table exists: write the calls held until now, and every later one at once."""
        with self._lock:
            held, self._held = self._held or [], None
        self._write(held)

    def spent(self, kind: str) -> float:
        with self._lock:
            return self._spent.get(kind, 0.0)

    def tokens(self, kind: str) -> int:
        with self._lock:
            return self._tokens.get(kind, 0)

    def _write(self, calls: Sequence[Call]) -> None:
        if not calls:
            return
        with self.connect() as conn:
            with conn.cursor() as cur:
                cur.executemany(
                    sql.SQL(
                        "INSERT INTO {}.usage (kind, provider, model, tokens_in, tokens_out, latency_ms, cost_usd, cached) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                    ).format(sql.Identifier(self.schema)),
                    [(c.kind, c.provider, c.model, c.tokens_in, c.tokens_out, c.latency_ms, c.cost_usd, c.cached)
                     for c in calls],
                )
            conn.commit()


@dataclass
class Budget:
    """A spending limit for one ingest: the next batch is sent only when its estimated cost still fits."""

    max_cost_usd: float
    estimate: Callable[[Sequence[str]], float]  # dollars to embed these texts
    spent: Callable[[], float]  # dollars spent by this ingest so far

    def allows(self, texts: Sequence[str]) -> bool:
        return self.spent() + self.estimate(texts) <= self.max_cost_usd

    def as_dict(self) -> dict:
        return {"max_cost_usd": self.max_cost_usd, "spent_usd": round(self.spent(), 6)}


def summarise(conn: psycopg.Connection, schema: str, since: date | None = None) -> dict:
    """Calls, tokens and cost by day (UTC), kind, provider and model, with totals."""
    rows = conn.execute(
        sql.SQL(
            """SELECT (at AT TIME ZONE 'UTC')::date AS day, kind, provider, model, count(*),
                      count(*) FILTER (WHERE cached), sum(tokens_in)::bigint, sum(tokens_out)::bigint, sum(cost_usd)
               FROM {}.usage
               WHERE %(since)s::date IS NULL OR at >= (%(since)s::date)::timestamp AT TIME ZONE 'UTC'
               GROUP BY 1, 2, 3, 4
               ORDER BY 1, 2, 3, 4"""
        ).format(sql.Identifier(schema)),
        {"since": since},
    ).fetchall()
    names = ("day", "kind", "provider", "model", "calls", "cached", "tokens_in", "tokens_out", "cost_usd")
    groups = [dict(zip(names, row)) for row in rows]
    for group in groups:
        group["day"] = group["day"].isoformat()
        group["cost_usd"] = round(group["cost_usd"], 8)
    return summary_of(groups, since)


def summary_of(groups: list[dict], since: date | None) -> dict:
    total = {key: sum(g[key] for g in groups) for key in ("calls", "cached", "tokens_in", "tokens_out")}
    total["cost_usd"] = round(sum(g["cost_usd"] for g in groups), 8)
    return {"since": since.isoformat() if since else None, "groups": groups, "total": total}


def sum_calls(calls: Sequence[Call]) -> dict:
    """Tokens and cost of a few calls (one answer), with the calls themselves."""
    return {
        "tokens_in": sum(c.tokens_in for c in calls),
        "tokens_out": sum(c.tokens_out for c in calls),
        "cost_usd": round(sum(c.cost_usd for c in calls), 8),
        "calls": [c.as_dict() for c in calls],
    }
