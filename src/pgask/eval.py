"""Retrieval quality: nDCG@10, Recall@100 and MRR@10 (computed by ir-measures) of the documents
pgask retrieves, on a BEIR-format dataset or on your own questions about the knowledge base.

A BEIR dataset (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) is ingested into a knowledge
base of its own (schema eval_<name>, reused on the next run). Chunk hits count for their
document, at the rank of its best chunk.
"""

from __future__ import annotations

import csv
import json
import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

from .config import Settings
from .errors import PgaskError
from .ingest.loaders import Document
from .kb import KnowledgeBase
from .search import MODES, Hit

DEPTH = 100  # documents retrieved per question: enough for Recall@100


def _measures() -> dict:
    from ir_measures import RR, R, Success, nDCG

    return {"ndcg@10": nDCG @ 10, "recall@100": R @ 100, "mrr@10": RR @ 10,
            "hit@1": Success @ 1, "hit@5": Success @ 5}


@dataclass
class Judged:
    """Questions and, for each, the documents that answer it (graded relevance > 0)."""

    name: str
    queries: dict[str, str]  # query id -> text
    qrels: dict[str, dict[str, int]]  # query id -> document id -> relevance
    kinds: dict[str, str] | None = None  # query id -> answerable, unanswerable, korean ... (None: all answerable)


class QueryProgress(Protocol):
    def start(self, mode: str, total: int) -> None: ...
    def advance(self) -> None: ...
    def stop(self) -> None: ...


def read_jsonl(path: Path) -> Iterator[dict]:
    """Objects of a JSON-lines file; a bad line is an error that names the file and the line."""
    try:
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise PgaskError(f"{path}, line {number}: not JSON ({exc.msg})") from exc
                if not isinstance(record, dict):
                    raise PgaskError(f"{path}, line {number}: expected a JSON object")
                yield record
    except OSError as exc:
        raise PgaskError(f"cannot read {path}: {exc.strerror}") from exc


def _field(record: dict, key: str, path: Path) -> str:
    if key not in record:
        raise PgaskError(f"{path}: a record has no {key!r} field: {json.dumps(record)[:120]}")
    return str(record[key])


# --- BEIR datasets ---------------------------------------------------------------------------------


def dataset_name(folder: Path) -> str:
    return folder.resolve().name


def beir_schema(name: str) -> str:
    """The schema a dataset's knowledge base lives in: eval_ and the name in lower-case identifier letters."""
    return "eval_" + (re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "dataset")


def beir_source(name: str, doc_id: str) -> str:
    return f"beir:{name}/{doc_id}"


def beir_settings(settings: Settings, name: str) -> Settings:
    """The dataset's knowledge base: its own schema, and each document kept whole (chunk_tokens=0).

    Published BEIR results embed title and text as one input that the model cuts at its length,
    and match keywords against the whole text; one chunk per document, with the title as its
    heading, is exactly that.
    """
    return settings.with_overrides(schema=beir_schema(name), chunk_tokens=0)


def load_beir(folder: Path, split: str = "test") -> Judged:
    for required in ("corpus.jsonl", "queries.jsonl"):
        if not (folder / required).is_file():
            raise PgaskError(f"{folder} is not a BEIR dataset: {required} is missing "
                             "(expected corpus.jsonl, queries.jsonl and qrels/<split>.tsv)")
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        splits = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise PgaskError(f"{folder} has no qrels for split {split!r} (qrels/{split}.tsv); "
                         f"available: {', '.join(splits) or 'none'}")
    qrels: dict[str, dict[str, int]] = {}
    with qrels_path.open(encoding="utf-8", newline="") as fh:
        for row in csv.reader(fh, delimiter="\t"):
            if len(row) < 3 or row[0] == "query-id":
                continue
            try:
                relevance = int(row[2])
            except ValueError as exc:
                raise PgaskError(f"{qrels_path}: relevance {row[2]!r} is not a whole number") from exc
            qrels.setdefault(row[0], {})[row[1]] = relevance
    queries = {}
    for record in read_jsonl(folder / "queries.jsonl"):
        qid = _field(record, "_id", folder / "queries.jsonl")
        if qid in qrels:
            queries[qid] = _field(record, "text", folder / "queries.jsonl")
    missing = set(qrels) - set(queries)
    if missing:
        raise PgaskError(f"{qrels_path} judges {len(missing)} queries that queries.jsonl does not have, "
                         f"such as {sorted(missing)[0]!r}")
    return Judged(dataset_name(folder), queries, qrels)


def beir_documents(folder: Path, name: str) -> Iterator[Document]:
    path = folder / "corpus.jsonl"
    for record in read_jsonl(path):
        yield Document(source=beir_source(name, _field(record, "_id", path)), title=str(record.get("title") or ""),
                       text=_field(record, "text", path), format="text")


# --- your own questions ----------------------------------------------------------------------------

UNANSWERABLE = "unanswerable"


def load_questions(path: Path, split: str | None = None) -> Judged:
    """One question per line: {"question": ..., "relevant": [paths]} ("source" or "sources" also do),
    optionally with "id", "kind" (answerable, unanswerable, korean ...) and "split" (dev, test).

    A question of kind "unanswerable" has no relevant documents: the docs do not answer it, and it
    counts for how often pgask says so.
    """
    queries, qrels, kinds = {}, {}, {}
    for number, record in enumerate(read_jsonl(path), 1):
        if split and record.get("split", split) != split:
            continue
        question = record.get("question")
        expected = record.get("relevant", record.get("sources", record.get("source")))
        expected = [expected] if isinstance(expected, str) else expected
        kind = str(record.get("kind") or ("answerable" if expected else UNANSWERABLE))
        valid = isinstance(expected, list) and all(isinstance(s, str) and s for s in expected)
        if not isinstance(question, str) or not question.strip() or not valid or \
                (not expected and kind != UNANSWERABLE) or (expected and kind == UNANSWERABLE):
            raise PgaskError(f"{path}, question {number}: expected "
                             '{"question": "...", "relevant": ["path/of/the/document"]} '
                             '(or "kind": "unanswerable" and no relevant documents)')
        qid = str(record.get("id", number))
        if qid in queries:
            raise PgaskError(f"{path}, question {number}: id {qid!r} is used twice")
        queries[qid], kinds[qid] = question, kind
        qrels[qid] = {s: 1 for s in expected}
    if not queries:
        raise PgaskError(f"{path} has no questions" + (f" in split {split!r}" if split else ""))
    return Judged(path.stem, queries, qrels, kinds)


def source_matches(source: str, expected: str) -> bool:
    """An expected source names a stored one exactly, as a path relative to the current folder,
    or by its last path components (guide.md, docs/guide.md)."""
    tail = expected.removeprefix("./")
    return source in (expected, os.path.abspath(expected)) or source.endswith("/" + tail)


def resolve_expected(judged: Judged, stored: Sequence[str]) -> Judged:
    """Judgements on stored sources; an expected source that names no stored document is an error."""
    qrels = {}
    for qid, expected in judged.qrels.items():
        resolved: dict[str, int] = {}
        for name, relevance in expected.items():
            found = [s for s in stored if source_matches(s, name)]
            if not found:
                raise PgaskError(f"expected source {name!r} (question {qid}) is not in the knowledge base: "
                                 "give its path as `pgask search` shows it, or ingest it first")
            resolved.update({s: relevance for s in found})
        qrels[qid] = resolved
    return replace(judged, qrels=qrels)


# --- running the questions -------------------------------------------------------------------------


def ranked_documents(hits: Sequence[Hit], document_of: Callable[[str], str], limit: int) -> list[str]:
    """Documents in the order of their best chunk."""
    ranked: dict[str, None] = {}
    for hit in hits:
        ranked.setdefault(document_of(hit.source), None)
        if len(ranked) == limit:
            break
    return list(ranked)


def evaluate(
    kb: KnowledgeBase,
    judged: Judged,
    modes: Sequence[str],
    *,
    document_of: Callable[[str], str] = lambda source: source,
    progress: QueryProgress | None = None,
    rerank: bool = False,
) -> list[dict]:
    """One row of measures per mode and kind of question, averaged over its questions (one with no
    hits scores 0). Each row also counts `refused`: the questions that `pgask ask` would answer
    "not in the documents" from the same passages (for unanswerable questions, the right call).
    `rerank`: rank as `ask` does, the cross-encoder re-ordering the best passages (mode "hybrid+rerank")."""
    import ir_measures

    from . import rerank as reranking

    rerank = rerank and reranking.configured(kb.settings.rerank) is not None

    measures = _measures()
    embeddings = {qid: kb.embedder.embed_query(text) for qid, text in judged.queries.items() if text.strip()}
    # what ask refuses by its names alone (answerability.py) does not depend on the mode: asked once
    unmentioned = {qid for qid in embeddings if kb.asker.unmentioned(judged.queries[qid])}
    kinds = judged.kinds or dict.fromkeys(judged.queries, "answerable")
    order = list(dict.fromkeys(kinds[q] for q in judged.queries))
    rows = []
    for mode in modes:
        if progress:
            progress.start(mode, len(judged.queries))
        started = time.perf_counter()
        run: dict[str, dict[str, float]] = {}
        refused: set[str] = set()
        for qid, text in judged.queries.items():
            # an empty question finds nothing (and scores 0) rather than stopping the run
            hits = kb.search(text, k=DEPTH, mode=mode, embedding=embeddings[qid], rerank=rerank) \
                if qid in embeddings else []
            # BEIR's convention: a document with the question's own id is not an answer to it
            ranked = [d for d in ranked_documents(hits, document_of, DEPTH) if d != qid]
            run[qid] = {doc: float(len(ranked) - rank) for rank, doc in enumerate(ranked)}
            if qid in unmentioned or not kb.answerable(hits[:kb.settings.top_k]):
                refused.add(qid)
            if progress:
                progress.advance()
        seconds = time.perf_counter() - started
        if progress:
            progress.stop()
        for kind in order:
            qids = [q for q in judged.queries if kinds[q] == kind]
            row = {"dataset": judged.name, "mode": mode + "+rerank" if rerank else mode, "kind": kind}
            if kind != UNANSWERABLE:
                totals = dict.fromkeys(measures.values(), 0.0)
                qrels = {q: judged.qrels[q] for q in qids}
                for metric in ir_measures.iter_calc(list(measures.values()), qrels, {q: run[q] for q in qids}):
                    totals[metric.measure] += metric.value
                row.update({key: round(totals[m] / len(qids), 4) for key, m in measures.items()})
            row.update(queries=len(qids), refused=len(refused & set(qids)),
                       seconds=round(seconds * len(qids) / len(judged.queries), 1))
            rows.append(row)
    return rows


def modes_for(mode: str) -> list[str]:
    if mode == "all":
        return list(MODES)
    if mode not in MODES:
        raise PgaskError(f"unknown mode {mode!r}: use vector, keyword, hybrid or all")
    return [mode]


def corpus_line(kb: KnowledgeBase, report) -> str:
    """What ingesting an evaluation corpus did (an IngestReport), for the user."""
    return (f"corpus in schema {kb.schema}: {report.added} added, {report.updated} updated, "
            f"{report.unchanged} unchanged, {report.deleted} deleted, {report.chunks} chunks "
            f"embedded in {report.seconds:.1f}s")


def evaluate_beir(
    settings: Settings,
    folder: Path,
    *,
    split: str = "test",
    modes: Sequence[str] = MODES,
    ingest_progress=None,
    query_progress: QueryProgress | None = None,
    notify: Callable[[str], None] = lambda message: None,
    rerank: bool = False,
) -> list[dict]:
    """Ingest the dataset's corpus into its own knowledge base (unchanged documents are skipped),
    then measure each mode on the split's questions."""
    judged = load_beir(folder, split)
    prefix = beir_source(judged.name, "")
    with KnowledgeBase(beir_settings(settings, judged.name)) as kb:
        report = kb.ingest_documents(beir_documents(folder, judged.name), prune_scope=[prefix.rstrip("/")],
                                     progress=ingest_progress, notify=notify)
        notify(corpus_line(kb, report))
        return evaluate(kb, judged, modes, document_of=lambda source: source.removeprefix(prefix),
                        progress=query_progress, rerank=rerank)


def evaluate_questions(
    kb: KnowledgeBase, path: Path, *, split: str | None = None, modes: Sequence[str] = MODES,
    progress: QueryProgress | None = None, rerank: bool = False,
) -> list[dict]:
    """Measure each mode on your own questions (JSON lines of question and expected source) against `kb`."""
    judged = resolve_expected(load_questions(path, split), kb.sources())
    return evaluate(kb, judged, modes, progress=progress, rerank=rerank)


def evaluate_corpus(
    settings: Settings,
    path: Path,
    corpus: Path,
    *,
    split: str | None = None,
    modes: Sequence[str] = MODES,
    ingest_progress=None,
    query_progress: QueryProgress | None = None,
    notify: Callable[[str], None] = lambda message: None,
    rerank: bool = False,
) -> list[dict]:
    """Ingest the folder `corpus` into a knowledge base of its own (schema eval_<folder name>,
    unchanged files skipped, removed ones pruned), then measure each mode on the questions in
    `path`, whose relevant documents are paths relative to `corpus`."""
    if not corpus.is_dir():
        raise PgaskError(f"--corpus {corpus} is not a folder")
    judged = load_questions(path, split)
    root = corpus.resolve()
    with KnowledgeBase(settings.with_overrides(schema=beir_schema(root.name))) as kb:
        report = kb.ingest([root], prune=True, progress=ingest_progress, notify=notify)
        notify(corpus_line(kb, report))
        stored = {os.path.relpath(s, root) for s in kb.sources()}
        missing = sorted({d for docs in judged.qrels.values() for d in docs} - stored)
        if missing:
            raise PgaskError(f"{path} names {len(missing)} relevant documents that {corpus} does not hold, "
                             f"such as {missing[0]!r}: give paths relative to the corpus folder")
        return evaluate(kb, judged, modes, document_of=lambda source: os.path.relpath(source, root),
                        progress=query_progress, rerank=rerank)
