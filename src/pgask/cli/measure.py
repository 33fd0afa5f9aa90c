"""`pgask eval` (retrieval quality) and `bench` (speed)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..errors import PgaskError
from .common import JsonOption, emit_json, err, handle_errors, knowledge_base, out
from .progress import IngestProgress, PhaseProgress, QueryProgress


@handle_errors
def evaluate(
    path: Path = typer.Argument(..., help="A BEIR dataset folder (corpus.jsonl, queries.jsonl, qrels/), or a "
                                          "JSON-lines file of your own questions and their relevant documents."),
    corpus: Path = typer.Option(None, "--corpus", help="Questions file: the folder its relevant paths are "
                                                       "relative to, ingested into a knowledge base of its own "
                                                       "(default: ask the current knowledge base)."),
    mode: str = typer.Option("all", "--mode", help="vector, keyword, hybrid or all."),
    split: str = typer.Option(None, "--split", help="BEIR: which qrels/<split>.tsv (default test); questions "
                                                    "file: only the questions of this split (default all)."),
    rerank: bool = typer.Option(False, "--rerank", help="Rank as ask does: the cross-encoder re-orders the best "
                                                        "passages (PGASK_RERANK_DEPTH)."),
    as_json: bool = JsonOption,
):
    """Measure retrieval (nDCG@10, Recall@100, MRR@10, hit@1, hit@5 per search mode and kind of
    question) and how often `pgask ask` would refuse to answer."""
    from .. import eval as evaluation
    from ..config import load_settings

    modes = evaluation.modes_for(mode)
    progress = QueryProgress()
    notify = lambda message: err.print(f"[dim]{escape(message)}[/dim]")  # noqa: E731
    if path.is_dir() or (path.is_file() and corpus is not None):
        ingest_progress = IngestProgress()
        try:
            if path.is_dir():
                rows = evaluation.evaluate_beir(
                    load_settings(), path, split=split or "test", modes=modes, ingest_progress=ingest_progress,
                    query_progress=progress, notify=notify, rerank=rerank)
            else:
                rows = evaluation.evaluate_corpus(
                    load_settings(), path, corpus, split=split, modes=modes, ingest_progress=ingest_progress,
                    query_progress=progress, notify=notify, rerank=rerank)
        finally:
            ingest_progress.stop()
            progress.stop()
    elif path.is_file():
        with knowledge_base() as kb:
            try:
                rows = evaluation.evaluate_questions(kb, path, split=split, modes=modes, progress=progress,
                                                     rerank=rerank)
            finally:
                progress.stop()
    else:
        raise PgaskError(f"no such file or directory: {path}")
    if as_json:
        emit_json(rows)
        return
    from rich.table import Table

    from rich import box

    for dataset in dict.fromkeys(row["dataset"] for row in rows):
        # no padding, the box's one-space separators only: nine columns, "hybrid+rerank" and
        # "unanswerable" included, fit an 80-column terminal (or a log) uncut
        table = Table("mode", "kind", "nDCG@10", "R@100", "MRR@10", "hit@1", "hit@5", "n", "refused",
                      title=dataset, box=box.SIMPLE_HEAD, show_edge=False, padding=0)
        for row in (r for r in rows if r["dataset"] == dataset):
            measures = [f"{row[m]:.4f}" if m in row else "-"
                        for m in ("ndcg@10", "recall@100", "mrr@10", "hit@1", "hit@5")]
            table.add_row(row["mode"], row["kind"], *measures, str(row["queries"]), str(row["refused"]))
        out.print(table)
    seconds = sum(r["seconds"] for r in rows)
    out.print(f"searched in {seconds:.1f}s. refused: the questions `pgask ask` answers \"not in the documents\" "
              "from the same passages (right for unanswerable ones, wrong for the rest)")


@handle_errors
def bench(
    corpus: Path = typer.Option(Path("docs"), "--corpus", help="Folder of documents to embed, ingest and search."),
    queries: Optional[Path] = typer.Option(None, "--queries", help="File with one query per line (default: sampled from the corpus)."),
    query_count: int = typer.Option(100, "--query-count", min=1, help="Queries sampled from the corpus without --queries."),
    synthetic_rows: int = typer.Option(100_000, "--synthetic-rows", min=0,
                                       help="Synthetic 384-d vectors to COPY and index (0: skip; the acceptance run uses 1000000)."),
    m: int = typer.Option(16, "--m", min=2, max=100, help="hnsw: links per node."),
    ef_construction: int = typer.Option(64, "--ef-construction", min=4, max=1000, help="hnsw: build-time candidate list."),
    ef_search: Optional[int] = typer.Option(None, "--ef-search", min=1, max=1000, help="hnsw: search-time candidate list."),
    as_json: bool = JsonOption,
):
    """Measure encode and ingest chunks/s, search latency and recall, COPY rows/s and peak memory."""
    from ..bench import BenchOptions, run
    from ..config import load_settings

    lines: list[str] = []
    if queries is not None:
        try:
            lines = [line.strip() for line in queries.read_text(encoding="utf-8").splitlines() if line.strip()]
        except OSError as exc:
            raise PgaskError(f"cannot read the queries file {queries}: {exc.strerror}") from exc
        if not lines:
            raise PgaskError(f"the queries file {queries} has no queries (one per line)")
    options = BenchOptions(corpus=corpus, queries=lines, query_count=query_count, synthetic_rows=synthetic_rows,
                           m=m, ef_construction=ef_construction, ef_search=ef_search)
    progress = PhaseProgress()
    try:
        result = run(load_settings(), options, progress,
                     notify=lambda message: progress.bar.console.print(f"[dim]{escape(message)}[/dim]"))
    finally:
        progress.stop()
    if as_json:
        emit_json(result.as_dict())
        return
    rows = [
        ("machine", f"{result.cpu}, {result.cores} cores"),
        ("database", result.engine + (f", {result.workers} workers" if result.has("workers") and result.workers else "")),
        ("backend", f"{result.backend} ({result.model})"),
        ("corpus", f"{result.documents} documents, {result.chunks} chunks"),
        ("encode", f"{result.encode_chunks_per_s:.1f} chunks/s (model only)"),
        ("ingest", f"{result.ingest_chunks_per_s:.1f} chunks/s end to end "
                   f"({result.ingest_to_encode_ratio:.2f} × encode)"),
    ]
    if result.has("speedup_vs_torch"):
        rows.append(("vs torch", f"{result.speedup_vs_torch:.2f} × PyTorch fp32 "
                                 f"({result.torch_encode_chunks_per_s:.1f} chunks/s)"))
    rows += [
        ("search", f"p50 {result.search_p50_ms:.1f} ms, p95 {result.search_p95_ms:.1f} ms "
                   f"over {result.queries} queries (vector: embedding + SQL, HNSW)"),
        ("hybrid", f"p50 {result.hybrid_p50_ms:.1f} ms, p95 {result.hybrid_p95_ms:.1f} ms "
                   f"(embedding + HNSW and BM25, fused)"),
        ("keyword", f"p50 {result.keyword_p50_ms:.1f} ms, p95 {result.keyword_p95_ms:.1f} ms (BM25)"),
        ("recall@10", f"{result.recall_at_10} (HNSW m={result.m}, ef_construction={result.ef_construction}, "
                      f"ef_search={result.ef_search}; vs exact search)"),
        ("hnsw build", f"{result.hnsw_build_s:.2f} s for {result.chunks} chunks"),
    ]
    if result.has("cold_search_s"):
        rows.append(("cold start", f"status {result.cold_status_s:.2f} s, search {result.cold_search_s:.2f} s "
                                   f"(a fresh process each, start to exit, median of {result.cold_runs})"))
    if result.copy_rows_per_s:
        rows += [("COPY", f"{result.copy_rows_per_s:,} rows/s ({result.synthetic_rows:,} synthetic {result.dim}-d vectors)"),
                 ("hnsw build", f"{result.synthetic_hnsw_build_s:.1f} s for {result.synthetic_rows:,} synthetic rows "
                                f"({result.index_memory_mb} MB maintenance_work_mem, {result.index_workers} parallel workers)"),
                 ("search", f"p50 {result.synthetic_search_p50_ms:.1f} ms, p95 {result.synthetic_search_p95_ms:.1f} ms, "
                            f"recall@10 {result.synthetic_recall_at_10} over {result.synthetic_queries} synthetic "
                            f"queries (exact: p50 {result.synthetic_exact_p50_ms:.1f} ms)")]
    rows.append(("peak RSS", f"{result.peak_rss_mb:.0f} MB (ingest phase: {result.ingest_peak_rss_mb:.0f} MB)"))
    for name, value in rows:
        out.print(f"[bold]{name:>10}[/bold]  {escape(value)}")
