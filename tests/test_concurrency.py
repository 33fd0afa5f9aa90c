"""Searches while an ingest rewrites, adds and prunes documents see each document whole or not at all.

Every chunk of a document names the revision it belongs to and how many chunks that revision has,
and the document's title names the revision too; revisions differ in their number of chunks. A
search that asks for more passages than exist gets every chunk, so each one shows exactly what its
snapshot held: a document stored in more than one transaction would show up with chunks of two
revisions, with a title of another revision than its chunks, or with chunks missing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .helpers import ROUNDS, ingest_while_searching, serving, write


def test_searches_during_an_ingest_see_each_document_whole_or_not_at_all(kb, tmp_path):
    problems, seen, searches = ingest_while_searching(kb, tmp_path / "corpus")
    assert problems == []
    # the searches did overlap the writes: they saw documents change and come and go
    assert searches >= ROUNDS and len(seen["stable0"]) >= 3 and len([n for n in seen if n.startswith("added")]) >= 3


def test_the_load_script_reports_its_figures_and_zero_errors(kb, tmp_path):
    """scripts/load.py against a served API, briefly: it runs, reports, and counts no errors (its
    figures are measurements, recorded in the README, not asserted)."""

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
