"""`pgask eval` on a tiny BEIR-format dataset and on your own questions, through the CLI."""

import json
import math
import re

import pytest


CORPUS = {
    "d1": ("Watering tomatoes", "Tomato plants need deep watering at the base every two or three days."),
    "d2": ("Bicycle chains", "Clean the bicycle chain with a degreaser, then lubricate every roller."),
    "d3": ("Observing the Moon", "Lunar craters are best seen a few days after the new moon."),
    "d4": ("Sourdough", "Feed the sourdough starter daily with equal weights of flour and water."),
}
QUERIES = {"q1": "how often should I water tomato plants", "q2": "lubricating a bicycle chain"}


def write_beir(folder, qrels: dict[str, list[tuple[str, str, int]]]):
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, (t, x) in CORPUS.items()))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in QUERIES.items()))
    for split, rows in qrels.items():
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{r}" for q, d, r in rows]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def beir(tmp_path_factory):
    return write_beir(tmp_path_factory.mktemp("data") / "tiny-beir", {
        "test": [("q1", "d1", 1), ("q2", "d2", 1)],
        # q1 is also answered by d3, which shares no word with it: keyword search never finds it
        "partial": [("q1", "d1", 1), ("q1", "d3", 1)],
    })


def test_perfect_retrieval_scores_one_in_every_mode(run, beir):
    result = run("eval", str(beir), "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["mode"] for r in rows] == ["vector", "keyword", "hybrid"]
    for row in rows:
        assert row["dataset"] == "tiny-beir" and row["queries"] == 2 and row["seconds"] >= 0
        assert (row["ndcg@10"], row["recall@100"], row["mrr@10"]) == (1.0, 1.0, 1.0)
    assert "4 added" in result.stderr

    again = run("eval", str(beir), "--mode", "keyword", "--split", "partial", "--json")
    assert again.exit_code == 0, again.output
    assert "4 unchanged" in again.stderr  # the dataset's knowledge base is reused
    [row] = json.loads(again.stdout)
    # one question; d1 first, d3 never: DCG = 1, ideal DCG = 1 + 1/log2(3)
    assert row["queries"] == 1 and row["mode"] == "keyword"
    assert row["ndcg@10"] == pytest.approx(1 / (1 + 1 / math.log2(3)), abs=1e-4)
    assert row["recall@100"] == 0.5 and row["mrr@10"] == 1.0


def test_human_output_is_a_table(run, beir):
    result = run("eval", str(beir), "--mode", "vector")
    assert result.exit_code == 0, result.output
    assert "nDCG@10" in result.stdout and "1.0000" in result.stdout


def test_bad_datasets_say_what_is_wrong(run, tmp_path, beir):
    assert "no qrels for split 'dev'" in run("eval", str(beir), "--split", "dev").stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("eval", str(empty))
    assert result.exit_code == 1 and "corpus.jsonl is missing" in result.stderr
    assert run("eval", str(beir), "--mode", "fuzzy").exit_code == 1
    assert "no such file" in run("eval", str(tmp_path / "nowhere")).stderr


def test_own_questions_against_the_knowledge_base(run, corpus, tmp_path):
    assert run("ingest", str(corpus)).exit_code == 0
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        json.dumps({"question": "How often should I water tomatoes?", "source": "garden.md"}) + "\n"
        + json.dumps({"question": "how do I oil a bike chain", "sources": [str(corpus / "guides" / "bicycle.html")]})
        + "\n")
    result = run("eval", str(questions), "--mode", "hybrid", "--json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert row["dataset"] == "questions" and row["queries"] == 2
    assert (row["ndcg@10"], row["recall@100"], row["mrr@10"]) == (1.0, 1.0, 1.0)

    questions.write_text(json.dumps({"question": "anything", "source": "missing.md"}) + "\n")
    result = run("eval", str(questions))
    assert result.exit_code == 1 and "'missing.md'" in result.stderr and "not in the knowledge base" in result.stderr
    questions.write_text('{"question": "no source"}\n')
    assert "expected" in run("eval", str(questions)).stderr


def test_a_question_set_over_a_corpus_folder_scores_each_kind(run, corpus, tmp_path):
    questions = tmp_path / "set.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in [
        {"id": "en-1", "kind": "answerable", "split": "dev", "question": "how often do tomatoes need water",
         "relevant": ["garden.md"]},
        {"id": "en-2", "kind": "answerable", "split": "test", "question": "oiling a bike chain",
         "relevant": ["guides/bicycle.html"]},
        {"id": "un-1", "kind": "unanswerable", "split": "test", "question": "quarterly tax filing deadlines for LLCs",
         "relevant": []},
    ]))
    result = run("eval", str(questions), "--corpus", str(corpus), "--mode", "hybrid", "--json")
    assert result.exit_code == 0, result.output
    assert "schema eval_corpus" in result.stderr
    rows = {row["kind"]: row for row in json.loads(result.stdout)}
    assert rows.keys() == {"answerable", "unanswerable"}
    answerable, unanswerable = rows["answerable"], rows["unanswerable"]
    assert answerable["queries"] == 2 and (answerable["mrr@10"], answerable["hit@1"], answerable["hit@5"]) == (1, 1, 1)
    assert answerable["refused"] == 0
    assert unanswerable["queries"] == 1 and unanswerable["refused"] == 1 and "mrr@10" not in unanswerable

    reranked = run("eval", str(questions), "--corpus", str(corpus), "--mode", "hybrid", "--rerank", "--json",
                   env={"PGASK_RERANK": "on"})
    rows = {row["kind"]: row for row in json.loads(reranked.stdout)}
    assert {row["mode"] for row in rows.values()} == {"hybrid+rerank"}
    assert rows["answerable"]["mrr@10"] == 1 and rows["unanswerable"]["refused"] == 1
    table = run("eval", str(questions), "--corpus", str(corpus), "--mode", "hybrid", "--rerank",
                env={"PGASK_RERANK": "on"}).stdout  # a log is 80 columns wide: nothing is cut
    assert re.search(r"^hybrid\+rerank +unanswerable +- ", table, re.M) and "…" not in table, table

    only_dev = run("eval", str(questions), "--corpus", str(corpus), "--mode", "keyword", "--split", "dev")
    assert only_dev.exit_code == 0, only_dev.output
    kinds = [line.split()[1] for line in only_dev.stdout.splitlines() if line.strip().startswith("keyword ")]
    assert kinds == ["answerable"]

    questions.write_text(json.dumps({"question": "x", "relevant": ["nowhere.md"]}) + "\n")
    wrong = run("eval", str(questions), "--corpus", str(corpus))
    assert wrong.exit_code == 1 and "'nowhere.md'" in wrong.stderr and "relative to the corpus" in wrong.stderr
