"""An ingest killed with SIGKILL at any point leaves a consistent database, and a rerun
completes it: the result equals an uninterrupted ingest."""

import random
import signal
import time

import pytest

from pgask.config import Settings
from pgask.kb import KnowledgeBase

from .helpers import count_documents, crash_corpus, snapshot, start_ingest, wait_for_backends_to_end


@pytest.fixture(scope="module")
def reference(tmp_path_factory, home):
    corpus = crash_corpus(tmp_path_factory.mktemp("crash-corpus"))
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
