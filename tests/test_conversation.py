"""Follow-up questions made standalone: by the fallback without a model, by the model when configured."""

import json

import pytest

from pgask.conversation import REWRITE_PROMPT, expand_follow_up, is_follow_up, key_terms
from pgask.kb import KnowledgeBase

from .openai_server import sse_chat

PXF = "How to create an external table in Greenplum using PXF to read from an Oracle database?"
CHAIN = [{"role": "user", "content": "How do I care for my bicycle chain?"},
         {"role": "assistant", "content": "Clean it with a degreaser [1]."}]


@pytest.mark.parametrize("question", [
    "and how do I do that for Hadoop?", "What about S3?", "How do I install it?", "Why?",
])
def test_follow_ups_are_recognised(question):
    assert is_follow_up(question)


@pytest.mark.parametrize("question", [
    PXF, "How do I load data with gpfdist into Greenplum?", "Which tables that are distributed by hash use less space?",
])
def test_questions_that_stand_alone_are_left_alone(question):
    assert not is_follow_up(question)
    assert expand_follow_up(question, [{"role": "user", "content": "How do I water lettuce?"}]) == question


def test_fallback_adds_the_topic_terms_the_follow_up_lacks():
    history = [{"role": "user", "content": PXF}, {"role": "assistant", "content": "Use CREATE EXTERNAL TABLE [1]."},
               {"role": "user", "content": "and for Hadoop?"}, {"role": "assistant", "content": "..."}]
    rewritten = expand_follow_up("What about writing to it from Greenplum?", history)
    # the topic is the last question that stood alone (PXF), not the follow-up "and for Hadoop?"
    assert rewritten.startswith("What about writing to it from Greenplum? (")
    added = rewritten.split("(", 1)[1]
    assert {"PXF", "Oracle", "external", "table"} <= set(added.rstrip(")").split())
    assert "Greenplum" not in added and "Hadoop" not in added
    assert key_terms("How do I do that for Hadoop?") == ["Hadoop"]


def test_follow_up_finds_what_it_refers_to_only_with_the_conversation(shared_kb):
    alone = shared_kb.ask("Which product should I use for it?")
    assert alone.mode == "none"

    result = shared_kb.ask("Which product should I use for it?", history=CHAIN)
    assert result.question == "Which product should I use for it?"
    assert "bicycle" in result.standalone_question and "chain" in result.standalone_question
    assert result.mode == "extractive"
    assert result.sources[0].source.endswith("bicycle.html")
    assert "degreaser" in result.answer
    assert result.as_dict()["standalone_question"] == result.standalone_question


def test_model_rewrites_the_follow_up_before_retrieval(shared_kb, httpserver):
    rewrite = "Which product should I use to clean a bicycle chain?"
    httpserver.expect_ordered_request("/v1/chat/completions", method="POST").respond_with_response(
        sse_chat([rewrite], usage=(60, 12)))
    httpserver.expect_ordered_request("/v1/chat/completions", method="POST").respond_with_response(
        sse_chat(["Use a degreaser [1]."]))
    kb = KnowledgeBase(shared_kb.settings, llm_base_url=httpserver.url_for("/v1"), llm_model="test-model")
    searched: list[str] = []
    try:
        result = kb.ask("Which product should I use for it?", history=CHAIN, on_question=searched.append)
    finally:
        kb.close()

    assert searched == [rewrite] and result.standalone_question == rewrite
    assert result.answer == "Use a degreaser [1]." and result.mode == "llm"
    assert result.sources[0].source.endswith("bicycle.html")
    asked_to_rewrite = json.loads(httpserver.log[0][0].get_data())["messages"]
    assert asked_to_rewrite[0] == {"role": "system", "content": REWRITE_PROMPT}
    assert "user: How do I care for my bicycle chain?" in asked_to_rewrite[1]["content"]
    assert "assistant: Clean it with a degreaser [1]." in asked_to_rewrite[1]["content"]
    assert asked_to_rewrite[1]["content"].rstrip().endswith(
        "Last question: Which product should I use for it?\n\nStandalone question:")
    answer_prompt = json.loads(httpserver.log[1][0].get_data())["messages"]
    assert f"Question: {rewrite}" in answer_prompt[-1]["content"]
    assert len(answer_prompt) == 2  # rules and sources only: earlier answers cite other sources

    with shared_kb.connection() as conn:
        rows = conn.execute(f"SELECT tokens_in, tokens_out FROM {shared_kb.schema}.usage ORDER BY at").fetchall()
    assert rows[-2:] == [(60, 12), (120, 30)]
