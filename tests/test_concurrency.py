"""Searches while an ingest rewrites, adds and prunes documents see each document whole or not at all.

Every chunk of a document names the revision it belongs to and how many chunks that revision has,
and the document's title names the revision too; revisions differ in their number of chunks. A
search that asks for more passages than exist gets every chunk, so each one shows exactly what its
snapshot held: a document stored in more than one transaction would show up with chunks of two
revisions, with a title of another revision than its chunks, or with chunks missing.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path

from pgask.search import search

from .conftest import write

STABLE = 2  # documents rewritten every round: in every search, always whole
ROUNDS = 5
CHUNK = re.compile(r"Revision (\d+) part (\d+) of (\d+) of (\w+)\.")


def revision(folder, name: str, rev: int) -> None:
    """Document `name` at revision `rev`: 2, 3 or 4 sections of one short sentence, so one chunk each."""
    parts = 2 + rev % 3
    sections = "\n\n".join(f"## Section {p}\n\nRevision {rev} part {p} of {parts} of {name}. Tomatoes need water."
                           for p in range(1, parts + 1))
    write(folder / f"{name}.md", f"# {name} revision {rev}\n\n{sections}\n")


def check(hits, problems: list[str], seen: dict[str, set[int]]) -> None:
    by_document = defaultdict(list)
    for hit in hits:
        by_document[hit.document_id].append(hit)
    names = set()
    for document_hits in by_document.values():
        found = [CHUNK.search(h.content) for h in document_hits]
        if not all(found):
            problems.append(f"a chunk of no known revision: {document_hits}")
            continue
        (rev, parts, name), *others = {(int(m[1]), int(m[3]), m[4]) for m in found}
        title = document_hits[0].title
        if others:
            problems.append(f"{name}: chunks of revisions {sorted([rev] + [o[0] for o in others])} at once")
        elif title != f"{name} revision {rev}":
            problems.append(f"{name}: title {title!r} over chunks of revision {rev}")
        elif sorted(int(m[2]) for m in found) != list(range(1, parts + 1)):
            problems.append(f"{name} revision {rev}: parts {sorted(int(m[2]) for m in found)} of {parts}")
        names.add(name)
        seen[name].add(rev)
    missing = {f"stable{i}" for i in range(STABLE)} - names
    if missing:
        problems.append(f"documents that exist before, during and after every write are missing: {sorted(missing)}")


def ingest_while_searching(kb, folder) -> tuple[list[str], dict[str, set[int]], int]:
    """ROUNDS ingests of changing revisions of `folder` while another thread searches without
    pause: what the searches saw wrong, the revisions each document was seen at, how many ran."""
    for i in range(STABLE):
        revision(folder, f"stable{i}", 0)
    kb.ingest([folder])
    done = threading.Event()
    problems: list[str] = []
    seen: dict[str, set[int]] = defaultdict(set)
    searches = 0
    question = kb.embedder.embed_query("how much water do tomatoes need")

    def search_until_done() -> None:
        nonlocal searches
        try:
            with kb.connection() as conn:
                while not done.is_set() and len(problems) < 5:
                    check(search(conn, kb.schema, "", question, mode="vector", k=100), problems, seen)
                    searches += 1
        except Exception as exc:  # noqa: BLE001 - a failed search is a finding too
            problems.append(f"the search failed: {exc!r}")

    searcher = threading.Thread(target=search_until_done, name="searcher")
    searcher.start()
    try:
        for rev in range(1, ROUNDS + 1):
            for i in range(STABLE):
                revision(folder, f"stable{i}", rev)
            revision(folder, f"added{rev}", rev)  # a new document each round ...
            (folder / f"added{rev - 2}.md").unlink(missing_ok=True)  # ... pruned two rounds later
            report = kb.ingest([folder], prune=True)
            assert (report.updated, report.added, report.deleted, report.failed) == (STABLE, 1, int(rev > 2), [])
    finally:
        done.set()
        searcher.join(timeout=120)
    return problems, seen, searches


def test_searches_during_an_ingest_see_each_document_whole_or_not_at_all(kb, tmp_path):
    problems, seen, searches = ingest_while_searching(kb, tmp_path / "corpus")
    assert problems == []
    # the searches did overlap the writes: they saw documents change and come and go
    assert searches >= ROUNDS and len(seen["stable0"]) >= 3 and len([n for n in seen if n.startswith("added")]) >= 3


def test_the_load_script_reports_its_figures_and_zero_errors(kb, tmp_path):
    """scripts/load.py against a served API, briefly: it runs, reports, and counts no errors (its
    figures are measurements, recorded in the README, not asserted)."""
    from .test_server import serving

    write(tmp_path / "docs" / "serve.md", "# Serving\n\nRun pgask serve to answer questions over HTTP.\n")
    write(tmp_path / "docs" / "index.md", "# Indexes\n\nBuild an HNSW index with pgask index.\n")
    kb.ingest([tmp_path / "docs"])
    script = Path(__file__).resolve().parents[1] / "scripts" / "load.py"
    with serving(kb) as url:
        result = subprocess.run([sys.executable, str(script), "--url", url, "--clients", "3", "--seconds", "2",
                                 "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["errors"] == 0 and report["requests"] >= 3 and report["clients"] == 3
    assert report["search"]["requests"] + report["ask"]["requests"] == report["requests"]
    assert report["p50_ms"] <= report["p99_ms"] <= report["max_ms"]
    refused = subprocess.run([sys.executable, str(script), "--url", "http://192.0.2.1:8000"], capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 2 and "not a loopback address" in refused.stderr
