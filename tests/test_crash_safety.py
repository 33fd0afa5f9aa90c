"""An ingest killed with SIGKILL at any point leaves a consistent database, and a rerun
completes it: the result equals an uninterrupted ingest."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from pgask.config import Settings
from pgask.kb import KnowledgeBase


def make_corpus(root, n=40, seed=7):
    rng = random.Random(seed)
    words = "replication vacuum segment mirror index planner partition cluster backup restore " \
            "lock memory query table column schema role extension tablespace".split()
    for i in range(n):
        sections = []
        for s in range(rng.randint(2, 3)):
            para = " ".join(rng.choice(words) for _ in range(rng.randint(30, 90)))
            sections.append(f"## Section {s}\n\n{para.capitalize()}.\n")
        (root / f"doc{i:03}.md").write_text(f"# Document {i}\n\n" + "\n".join(sections))
    return root


def snapshot(kb):
    """Everything that must match a clean ingest: documents, hashes, chunk counts and contents."""
    with kb.connection() as conn:
        docs = conn.execute(f"SELECT source, content_hash, chunk_count FROM {kb.schema}.documents ORDER BY source").fetchall()
        chunks = conn.execute(
            f"SELECT d.source, c.ordinal, md5(c.content) FROM {kb.schema}.chunks c "
            f"JOIN {kb.schema}.documents d ON d.id = c.document_id ORDER BY 1, 2").fetchall()
        orphans = conn.execute(
            f"SELECT count(*) FROM {kb.schema}.chunks c WHERE NOT EXISTS "
            f"(SELECT 1 FROM {kb.schema}.documents d WHERE d.id = c.document_id)").fetchone()[0]
        short = conn.execute(
            f"SELECT count(*) FROM {kb.schema}.documents d WHERE chunk_count <> "
            f"(SELECT count(*) FROM {kb.schema}.chunks c WHERE c.document_id = d.id)").fetchone()[0]
    return docs, chunks, orphans, short


def count_documents(kb):
    with kb.connection() as conn:
        row = conn.execute("SELECT to_regclass(%s)", (f"{kb.schema}.documents",)).fetchone()[0]
        if row is None:
            return 0
        return conn.execute(f"SELECT count(*) FROM {kb.schema}.documents").fetchone()[0]


# `pgask ingest` with small embedding batches and write transactions: at full size a corpus this
# small is embedded in one batch and stored in one transaction, and there is no "mid-way" to kill.
SMALL_BATCHES = """
import sys
from pgask.cli import main
from pgask.ingest.pipeline import Ingest

init = Ingest.__init__

def small(self, *args, **kwargs):
    init(self, *args, **kwargs)
    self.batch_chunks, self.write_documents = 8, 3

Ingest.__init__ = small
sys.argv[0] = "pgask"
main()
"""


def start_ingest(home, schema, corpus):
    env = {**os.environ, "PGASK_HOME": str(home), "PGASK_SCHEMA": schema, "PGASK_DATABASE_URL": "",
           "PGAPPNAME": f"pgask-{schema}"}
    return subprocess.Popen([sys.executable, "-c", SMALL_BATCHES, "ingest", str(corpus), "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_backends_to_end(kb, application_name):
    """The server finishes (aborts, or commits if COMMIT was already sent) a killed client's work
    on its own time: compare only once its sessions are gone."""
    deadline = time.monotonic() + 60
    with kb.connection() as conn:
        conn.autocommit = True
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                           (application_name,)).fetchone()[0]:
            assert time.monotonic() < deadline, "the killed ingest's sessions did not end"
            time.sleep(0.05)
        conn.autocommit = False


@pytest.fixture(scope="module")
def reference(tmp_path_factory, home):
    corpus = make_corpus(tmp_path_factory.mktemp("crash-corpus"))
    with KnowledgeBase(Settings(home=home, schema="crash_reference")) as kb:
        kb.ingest([corpus])
        yield corpus, snapshot(kb)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_mid_ingest_then_rerun_equals_clean_ingest(home, reference, seed):
    corpus, expected = reference
    schema = f"crash_{seed}"
    kill_after = random.Random(seed).randint(1, 32)  # documents stored before the kill
    with KnowledgeBase(Settings(home=home, schema=schema)) as kb:
        proc = start_ingest(home, schema, corpus)
        deadline = time.monotonic() + 180
        while proc.poll() is None and count_documents(kb) < kill_after and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, f"ingest finished before the kill point: {proc.communicate()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        wait_for_backends_to_end(kb, f"pgask-{schema}")

        docs, chunks, orphans, short = snapshot(kb)
        assert 0 < len(docs) < len(expected[0])  # killed mid-way
        assert orphans == 0 and short == 0  # every stored document is whole

        report = kb.ingest([corpus])
        assert report.failed == [] and report.unchanged == len(docs)
        assert snapshot(kb) == expected


def test_two_ingests_at_once_take_turns(home, reference):
    corpus, expected = reference
    schema = "crash_concurrent"
    with KnowledgeBase(Settings(home=home, schema=schema)) as kb:
        proc = start_ingest(home, schema, corpus)
        deadline = time.monotonic() + 180
        while proc.poll() is None and count_documents(kb) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        notes: list[str] = []
        report = kb.ingest([corpus], notify=notes.append)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert any("waiting for another ingest" in n for n in notes)
        # the second ingest ran after the first had stored everything
        assert report.unchanged == len(expected[0]) and report.added == 0
        assert snapshot(kb) == expected
