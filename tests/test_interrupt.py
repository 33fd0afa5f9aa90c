"""Ctrl-C during `pgask ingest`: a real SIGINT to a real ingest process. It stops after storing what
it had finished, says how many documents that is and what to do, and the same command finishes."""

import signal
import time

from pgask.config import Settings
from pgask.kb import KnowledgeBase

from .helpers import count_documents, crash_corpus, start_ingest, wait_for_backends_to_end



def test_ctrl_c_mid_ingest_says_what_was_stored_and_the_same_command_finishes(home, tmp_path):
    (tmp_path / "corpus").mkdir()
    corpus = crash_corpus(tmp_path / "corpus")
    schema = "interrupted"
    with KnowledgeBase(Settings(home=home, schema=schema)) as kb:
        proc = start_ingest(home, schema, corpus)  # small batches: there is a mid-way to stop at
        deadline = time.monotonic() + 180
        while proc.poll() is None and count_documents(kb) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, f"ingest finished before the interrupt: {proc.communicate()}"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
        wait_for_backends_to_end(kb, f"pgask-{schema}")

        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr and stdout == ""  # no JSON for work that did not finish
        stored = count_documents(kb)
        assert 0 < stored < 40
        noun = "document" if stored == 1 else "documents"
        assert f"interrupted: {stored} {noun} stored; run the same command again to finish" in stderr

        report = kb.ingest([corpus])
        assert report.unchanged == stored and report.added == 40 - stored and report.failed == []
