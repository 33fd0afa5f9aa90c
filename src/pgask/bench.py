"""`pgask bench`: how fast this machine embeds, ingests, searches and bulk-loads vectors.

Everything runs in schemas of its own (pgask_bench, pgask_bench_copy) on the configured
database, dropped before and after, so the user's knowledge base is never touched. Rates are
measured in one run on the same machine, so their ratios hold even when a busy neighbour
slows every absolute number down.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from psycopg import sql

from .config import Settings
from .db import store
from .errors import PgaskError
from .kb import KnowledgeBase
from .search import search as vector_search

BENCH_SCHEMA = "pgask_bench"
COPY_SCHEMA = "pgask_bench_copy"

# phase name and total (None: unknown) -> a function that advances that phase by n
Phases = Callable[[str, "int | None"], Callable[[int], None]]


@dataclass
class BenchOptions:
    corpus: Path
    queries: Sequence[str] = ()  # empty: sampled from the corpus
    query_count: int = 100
    k: int = 10
    synthetic_rows: int = 100_000
    m: int = 16
    ef_construction: int = 64
    ef_search: int | None = None  # None: pgask's default
    compare_torch: int = 256  # chunks embedded by both torch fp32 and the backend in use (0: skip)
    cold_runs: int = 3  # fresh `pgask status` and `pgask search` processes timed, each (0: skip)


UNSET: Any = type("Unset", (), {"__repr__": lambda self: "UNSET"})()  # a phase that did not run


@dataclass
class BenchResult:
    """What `pgask bench` measured, in the order `--json` gives it; UNSET: a phase that did not run
    (workers on one node, cold start with no runs, the torch comparison, the synthetic rows)."""

    cpu: str
    cores: int | None
    backend: str = ""
    model: str = ""
    dim: int = 0
    engine: str = ""
    server_version: str = ""
    workers: int = UNSET  # Citus workers
    encode_chunks_per_s: float = 0.0
    documents: int = 0
    chunks: int = 0
    ingest_chunks_per_s: float = 0.0
    ingest_to_encode_ratio: float = 0.0
    ingest_peak_rss_mb: float = 0.0
    hnsw_build_s: float = 0.0
    m: int = 16
    ef_construction: int = 64
    ef_search: int | str = ""  # as given, or the default described
    queries: int = 0
    search_p50_ms: float = 0.0
    search_p95_ms: float = 0.0
    hybrid_p50_ms: float = 0.0
    hybrid_p95_ms: float = 0.0
    keyword_p50_ms: float = 0.0
    keyword_p95_ms: float = 0.0
    recall_at_10: float | None = None
    cold_status_s: float = UNSET
    cold_search_s: float = UNSET
    cold_runs: int = UNSET
    torch_encode_chunks_per_s: float = UNSET
    speedup_vs_torch: float = UNSET
    synthetic_rows: int = UNSET
    copy_rows_per_s: int | None = None  # None: no synthetic rows
    synthetic_hnsw_build_s: float = UNSET
    index_memory_mb: int = UNSET
    index_workers: int | None = UNSET
    synthetic_queries: int = UNSET
    synthetic_search_p50_ms: float = UNSET
    synthetic_search_p95_ms: float = UNSET
    synthetic_exact_p50_ms: float = UNSET
    synthetic_exact_p95_ms: float = UNSET
    synthetic_recall_at_10: float = UNSET
    peak_rss_mb: float = 0.0

    def has(self, name: str) -> bool:
        return getattr(self, name) is not UNSET

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if self.has(f.name)}


def _no_phase(name: str, total: int | None) -> Callable[[int], None]:
    return lambda n: None


class _IngestPhase:
    """Shows an ingest as one more phase of the bench's progress display."""

    def __init__(self, phases: Phases) -> None:
        self.phases = phases
        self.step: Callable[[int], None] = lambda n: None

    def start(self, total_files: int | None) -> None:
        self.step = self.phases("ingest (documents)", total_files)

    def advance(self, files: int, chunks: int) -> None:
        self.step(files)


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)  # bytes on macOS, KiB elsewhere


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def sample_queries(texts: Sequence[str], count: int) -> list[str]:
    """Queries drawn evenly from the corpus: the first words of chunks spread over all of it."""
    step = max(1, len(texts) // count)
    picked = [" ".join(texts[i].split()[:12]) for i in range(0, len(texts), step)][:count]
    return [q for q in picked if q]


def encode_rate(embed: Callable[[Sequence[str]], np.ndarray], texts: Sequence[str]) -> float:
    started = time.perf_counter()
    embed(texts)
    return len(texts) / (time.perf_counter() - started)


def synthetic_vectors(rows: int, dim: int, block: int = 10_000, seed: int = 0):
    """Unit vectors in blocks, clustered like text embeddings are (uniform noise is HNSW's worst case)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, rows // 1000), dim)).astype(np.float32)
    for start in range(0, rows, block):
        n = min(block, rows - start)
        vectors = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
        yield start, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def copy_synthetic(kb: KnowledgeBase, rows: int, dim: int, step: Callable[[int], None]) -> float:
    """COPY `rows` synthetic chunk rows through the same binary COPY the ingest uses; rows/s.
    Each 1,000 rows belong to one document row (written first, not timed), so searches find them."""
    elapsed = 0.0
    with kb.connection() as conn:
        conn.execute(sql.SQL("INSERT INTO {}.documents (id, source, title, content_hash, chunk_count) "
                             "SELECT g, 'synthetic:' || g, '', '', 1000 FROM generate_series(0, %s) g")
                     .format(sql.Identifier(kb.schema)), ((rows - 1) // 1000,))
        conn.commit()
        for start, vectors in synthetic_vectors(rows, dim):
            batch = [((start + i) // 1000, start + i, (start + i) % 1000, "", "", 0, v) for i, v in enumerate(vectors)]
            began = time.perf_counter()  # vector generation is not part of the load
            with conn.transaction():
                store.copy_chunks(conn, kb.schema, batch)
            elapsed += time.perf_counter() - began
            step(len(batch))
    return rows / elapsed


def cold_start(settings: Settings, schema: str, query: str, runs: int, step: Callable[[int], None]) -> dict:
    """Seconds a fresh `pgask status` and `pgask search QUERY` process takes, start to exit (median of
    `runs`): what a person waits for at the prompt, interpreter, imports and model load included."""
    env = {**os.environ, "PGASK_SCHEMA": schema, "PGASK_HOME": str(settings.home),
           "PGASK_DATABASE_URL": settings.database_url or ""}

    def timed(args: list[str]) -> float:
        seconds = []
        for _ in range(runs):
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "pgask", *args], env=env, capture_output=True, text=True,
                                  stdin=subprocess.DEVNULL)
            seconds.append(time.perf_counter() - started)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no message"])[-1]
                raise PgaskError(f"`pgask {args[0]}` failed in a fresh process: {last}")
            step(1)
        return round(statistics.median(seconds), 3)

    return {"cold_status_s": timed(["status", "--json"]), "cold_search_s": timed(["search", query, "--json"]),
            "cold_runs": runs}


def synthetic_search(kb: KnowledgeBase, options: BenchOptions, step: Callable[[int], None]) -> dict:
    """Vector search over the synthetic rows through the HNSW index, against exact search: the
    questions are stored vectors moved a little (the nearest neighbour is not the vector itself)."""
    rng = np.random.default_rng(1)
    with kb.connection() as conn:
        every = max(1, options.synthetic_rows // options.query_count)
        stored = conn.execute(sql.SQL("SELECT embedding FROM {}.chunks WHERE id %% %s = 0 ORDER BY id LIMIT %s")
                              .format(sql.Identifier(kb.schema)), (every, options.query_count)).fetchall()
        questions = [v + 0.3 * rng.standard_normal(v.shape).astype(np.float32) / np.sqrt(len(v))
                     for v in (row[0].to_numpy() for row in stored)]
        questions = [q / np.linalg.norm(q) for q in questions]
        for q in questions[:5]:
            vector_search(conn, kb.schema, "", q, mode="vector", k=options.k)
        ann_ms, exact_ms, overlap = [], [], []
        for q in questions:
            started = time.perf_counter()
            approximate = vector_search(conn, kb.schema, "", q, mode="vector", k=options.k,
                                        ef_search=options.ef_search)
            ann_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            exact = vector_search(conn, kb.schema, "", q, mode="vector", k=options.k, exact=True)
            exact_ms.append((time.perf_counter() - started) * 1000)
            truth = {h.chunk_id for h in exact}
            overlap.append(len(truth & {h.chunk_id for h in approximate}) / max(1, len(truth)))
            step(1)
    return {"synthetic_queries": len(questions),
            "synthetic_search_p50_ms": round(percentile(ann_ms, 50), 2),
            "synthetic_search_p95_ms": round(percentile(ann_ms, 95), 2),
            "synthetic_exact_p50_ms": round(percentile(exact_ms, 50), 2),
            "synthetic_exact_p95_ms": round(percentile(exact_ms, 95), 2),
            "synthetic_recall_at_10": round(float(np.mean(overlap)), 4)}


def run(settings: Settings, options: BenchOptions, phases: Phases = _no_phase,
        notify: Callable[[str], None] = lambda message: None) -> BenchResult:
    """Measure everything `pgask bench` reports; returns the numbers (see the README's Performance).

    `notify` hears each number as soon as it is measured, so a long run shows what it found so far.
    """
    corpus = Path(options.corpus).expanduser()
    if not corpus.exists():
        raise PgaskError(f"no such corpus: {corpus} (give a folder of documents with --corpus)")
    result: dict = {"cpu": cpu_model(), "cores": os.cpu_count()}

    with KnowledgeBase(settings.with_overrides(schema=BENCH_SCHEMA)) as kb:
        kb.drop()
        embedder = kb.embedder
        embedder.prepare()  # a local model chooses its backend (measured once per machine) and loads
        result["backend"] = (embedder.backend_info() or {"backend": "remote"})["backend"]
        result.update(model=embedder.name, dim=embedder.dim)
        kb.init()
        status = kb.status()
        result.update(engine=status.engine, server_version=status.server_version)
        if status.cluster is not None and status.cluster.citus:
            result["workers"] = status.cluster.count

        step = phases("chunking", None)
        texts = [c.embed_text for c in kb.chunk_files([corpus])]
        step(len(texts))
        if not texts:
            raise PgaskError(f"no chunks in {corpus}: give a folder of .md .txt .rst .html .pdf documents")
        embedder.embed_documents(texts[:16])  # loads the model: not part of any rate

        step = phases("encode (model only)", 1)
        result["encode_chunks_per_s"] = round(encode_rate(embedder.embed_documents, texts), 2)
        step(1)
        notify(f"encode ({result['backend']}): {result['encode_chunks_per_s']} chunks/s over {len(texts)} chunks")

        report = kb.ingest([corpus], progress=_IngestPhase(phases))
        if report.failed:
            raise PgaskError(f"the bench corpus has documents that fail to load, e.g. {report.failed[0]['source']}")
        result.update(documents=report.added, chunks=report.chunks,
                      ingest_chunks_per_s=round(report.chunks / report.seconds, 2))
        result["ingest_to_encode_ratio"] = round(result["ingest_chunks_per_s"] / result["encode_chunks_per_s"], 3)
        result["ingest_peak_rss_mb"] = peak_rss_mb()
        notify(f"ingest: {result['ingest_chunks_per_s']} chunks/s ({result['ingest_to_encode_ratio']} x encode), "
               f"peak RSS {result['ingest_peak_rss_mb']} MB")

        step = phases("hnsw index (corpus)", 1)
        index = kb.create_index(kind="hnsw", m=options.m, ef_construction=options.ef_construction,
                                ef_search=options.ef_search)
        step(1)
        result.update(hnsw_build_s=index.build_seconds, m=options.m, ef_construction=options.ef_construction,
                      ef_search=options.ef_search or f"default (max(40, 2k) = {max(40, 2 * options.k)})")
        notify(f"hnsw build: {result['hnsw_build_s']} s for {report.chunks} chunks")

        queries = list(options.queries) or sample_queries(texts, options.query_count)
        for q in queries[:5]:  # warm the pool, the caches and the index pages
            kb.search(q, k=options.k, mode="vector")
            kb.search(q, k=options.k, mode="hybrid")
        latencies, hybrid, keyword, overlap = [], [], [], []
        step = phases("search", len(queries))
        for q in queries:
            started = time.perf_counter()
            approximate = kb.search(q, k=options.k, mode="vector")
            latencies.append((time.perf_counter() - started) * 1000)
            exact = kb.search(q, k=options.k, mode="vector", exact=True)
            truth = {h.chunk_id for h in exact}
            if truth:
                overlap.append(len(truth & {h.chunk_id for h in approximate}) / len(truth))
            started = time.perf_counter()
            kb.search(q, k=options.k, mode="hybrid")
            hybrid.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            kb.search(q, k=options.k, mode="keyword")
            keyword.append((time.perf_counter() - started) * 1000)
            step(1)
        result.update(queries=len(queries), search_p50_ms=round(percentile(latencies, 50), 2),
                      search_p95_ms=round(percentile(latencies, 95), 2),
                      hybrid_p50_ms=round(percentile(hybrid, 50), 2), hybrid_p95_ms=round(percentile(hybrid, 95), 2),
                      keyword_p50_ms=round(percentile(keyword, 50), 2), keyword_p95_ms=round(percentile(keyword, 95), 2),
                      recall_at_10=round(float(np.mean(overlap)), 4) if overlap else None)
        notify(f"vector search: p50 {result['search_p50_ms']} ms, p95 {result['search_p95_ms']} ms, "
               f"recall@10 {result['recall_at_10']}; hybrid search: p50 {result['hybrid_p50_ms']} ms, "
               f"p95 {result['hybrid_p95_ms']} ms")

        if options.cold_runs:
            step = phases("cold start (fresh processes)", 2 * options.cold_runs)
            result.update(cold_start(settings, BENCH_SCHEMA, queries[0], options.cold_runs, step))
            notify(f"cold start: status {result['cold_status_s']} s, search {result['cold_search_s']} s "
                   f"(median of {options.cold_runs} fresh processes)")

        if options.compare_torch and result["backend"] not in ("torch", "remote"):
            from .embed.local import LocalEmbedder

            sample = texts[:: max(1, len(texts) // options.compare_torch)][: options.compare_torch]
            torch = LocalEmbedder(embedder.name, backend="torch", cache_dir=settings.home / "models")
            torch.embed_documents(sample[:4])
            step = phases("torch fp32 comparison", 2)
            rates = {}
            for name, embed in (("torch", torch.embed_documents), ("backend", embedder.embed_documents)):
                rates[name] = encode_rate(embed, sample)
                step(1)
            result.update(torch_encode_chunks_per_s=round(rates["torch"], 2),
                          speedup_vs_torch=round(rates["backend"] / rates["torch"], 2))
            notify(f"torch fp32: {result['torch_encode_chunks_per_s']} chunks/s; "
                   f"{result['backend']} is {result['speedup_vs_torch']} x faster on {len(sample)} chunks")
        kb.drop()

    if options.synthetic_rows:
        with KnowledgeBase(settings.with_overrides(schema=COPY_SCHEMA)) as kb:
            kb.init(reset=True)
            result["synthetic_rows"] = options.synthetic_rows
            result["copy_rows_per_s"] = round(copy_synthetic(kb, options.synthetic_rows, result["dim"],
                                                             phases("COPY synthetic vectors", options.synthetic_rows)))
            notify(f"COPY: {result['copy_rows_per_s']} rows/s for {options.synthetic_rows} synthetic vectors")
            step = phases("hnsw index (synthetic)", 1)
            index = kb.create_index(kind="hnsw", m=options.m, ef_construction=options.ef_construction)
            step(1)
            result.update(synthetic_hnsw_build_s=index.build_seconds, index_memory_mb=index.memory_mb,
                          index_workers=index.workers)
            notify(f"hnsw build: {result['synthetic_hnsw_build_s']} s for {options.synthetic_rows} synthetic vectors")
            step = phases("search (synthetic)", options.query_count)
            result.update(synthetic_search(kb, options, step))
            notify(f"synthetic vector search: p50 {result['synthetic_search_p50_ms']} ms, "
                   f"p95 {result['synthetic_search_p95_ms']} ms, recall@10 {result['synthetic_recall_at_10']} "
                   f"(exact: p50 {result['synthetic_exact_p50_ms']} ms)")
            kb.drop()
    else:
        result["copy_rows_per_s"] = None
    result["peak_rss_mb"] = peak_rss_mb()
    return BenchResult(**result)
