"""Embedding backends: each computes the same model, auto picks one that keeps fp32 quality, and a
knowledge base built with one backend is searched with another."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pgask.cli import app
from pgask.config import DEFAULT_MODEL
from pgask.embed import autoselect, backends
from pgask.embed.local import LocalEmbedder
from pgask.errors import PgaskError
from pgask.kb import KnowledgeBase

TEXTS = [
    "Water tomato plants deeply two or three times a week, early in the morning.",
    "Clean the bicycle chain with a degreaser, then oil every roller.",
    "CREATE INDEX ON items USING hnsw (embedding vector_cosine_ops);",
    "gpfdist serves external table data to every segment in parallel.",
    "The Moon is best observed a few days after the new moon.",
    "Feed the sourdough starter daily with equal weights of flour and water.",
]


@pytest.fixture(scope="module")
def cache(home):
    return home / "models"  # shared with every knowledge base in the session: one export, one measurement


@pytest.fixture(scope="module")
def reference(cache):
    return LocalEmbedder(DEFAULT_MODEL, backend="torch", cache_dir=cache).embed_documents(TEXTS)


@pytest.mark.parametrize("backend,min_cosine", [("onnx", 0.999), ("onnx-int8", 0.97)])
def test_onnx_backends_compute_the_same_vectors_as_torch(cache, reference, backend, min_cosine):
    if backend not in backends.available():
        pytest.skip(f"{backend} is not available on this machine")
    vectors = LocalEmbedder(DEFAULT_MODEL, backend=backend, cache_dir=cache).embed_documents(TEXTS)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.min() >= min_cosine
    assert cosines.mean() >= 0.99


@pytest.mark.parametrize("backend", ["torch", "onnx", "onnx-int8"])
def test_a_question_gets_the_vector_encode_gives_it(cache, backend):
    """ONNX backends embed a question straight through the session (embed/direct_encoder.py): the
    same vector as sentence-transformers' encode() of that one text, truncation included."""
    if backend not in backends.available():
        pytest.skip(f"{backend} is not available on this machine")
    embedder = LocalEmbedder(DEFAULT_MODEL, backend=backend, cache_dir=cache)
    questions = ["How often should I water tomatoes?", "", "토마토에 물을 얼마나 자주 줘야 하나요?", "word " * 400]
    vectors = np.stack([embedder.embed_query(q) for q in questions])
    one_by_one = np.stack([embedder.embed_documents([q])[0] for q in questions])
    assert vectors.dtype == np.float32 and vectors.shape == (4, embedder.dim)
    assert (vectors * one_by_one).sum(axis=1).min() > 0.99999
    assert (embedder.direct_encoder is not None) == backend.startswith("onnx")


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_a_passage_gets_the_same_vector_whatever_it_is_embedded_with(cache, backend):
    """int8 activations are quantized per run of the model: in a padded batch a passage's vector
    moved with its batch mates (CI saw two ingests of one corpus rank near-ties differently).
    ONNX backends embed one passage a run, so its vector is always the same."""
    if backend not in backends.available():
        pytest.skip(f"{backend} is not available on this machine")
    embedder = LocalEmbedder(DEFAULT_MODEL, backend=backend, cache_dir=cache)
    alone = np.stack([embedder.embed_documents([t])[0] for t in TEXTS])
    together = embedder.embed_documents(TEXTS)
    shuffled = embedder.embed_documents(TEXTS[::-1] + ["word " * 300])[:len(TEXTS)][::-1]
    assert np.array_equal(alone, together) and np.array_equal(alone, shuffled)
    assert np.array_equal(embedder.embed_query(TEXTS[0]), alone[0])


def test_onnx_export_is_cached_per_model_and_cpu(cache):
    embedder = LocalEmbedder(DEFAULT_MODEL, backend="onnx", cache_dir=cache)
    embedder.embed_query("warm up")
    folder = backends.model_folder(cache, DEFAULT_MODEL) / backends.cpu_isa()
    exported = folder / backends.ONNX_FP32
    assert exported.is_file()
    if backends.cpu_isa() != "generic":
        assert (folder / backends.int8_file(backends.cpu_isa())).is_file()
    stamp = exported.stat().st_mtime_ns
    LocalEmbedder(DEFAULT_MODEL, backend="onnx", cache_dir=cache).embed_query("second process, same files")
    assert exported.stat().st_mtime_ns == stamp  # loaded, not exported again
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".export-")]


def test_auto_picks_an_available_backend_within_the_cosine_floor_and_remembers(cache):
    embedder = LocalEmbedder(DEFAULT_MODEL, backend="auto", cache_dir=cache)
    chosen = embedder.backend
    assert chosen in backends.available()
    recorded = autoselect.cached(cache, DEFAULT_MODEL)
    if backends.available() != ["torch"]:
        assert recorded is not None and recorded.backend == chosen
        assert recorded.cosine[chosen] >= autoselect.MIN_COSINE
        assert set(recorded.chunks_per_s) == set(backends.available())
        # the fastest of the eligible ones
        eligible = [b for b, c in recorded.cosine.items() if c >= autoselect.MIN_COSINE]
        assert recorded.chunks_per_s[chosen] == max(recorded.chunks_per_s[b] for b in eligible)
    fresh = LocalEmbedder(DEFAULT_MODEL, backend="auto", cache_dir=cache)
    assert fresh.backend_info() == {"requested": "auto", "backend": chosen, "isa": backends.cpu_isa()}
    assert not fresh.model_loaded  # read from the record: nothing measured or loaded


def test_a_stale_choice_is_measured_again(cache, tmp_path):
    path = autoselect.choice_file(tmp_path, DEFAULT_MODEL, backends.cpu_isa())
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"backend": "onnx", "isa": backends.cpu_isa(),
                                "environment": {"torch": "0.0-another-version"}}))
    assert autoselect.cached(tmp_path, DEFAULT_MODEL) is None
    path.write_text("not json")
    assert autoselect.cached(tmp_path, DEFAULT_MODEL) is None


def test_unknown_and_unavailable_backends_are_refused():
    with pytest.raises(PgaskError, match="unknown embedding backend 'tpu'.*auto, torch, onnx, onnx-int8, cuda"):
        LocalEmbedder(DEFAULT_MODEL, backend="tpu")
    if "cuda" not in backends.available():
        with pytest.raises(PgaskError, match="cuda: torch sees no CUDA GPU"):
            LocalEmbedder(DEFAULT_MODEL, backend="cuda").embed_query("x")


def test_cli_reports_a_bad_backend_in_one_line(cli_env, corpus):
    result = CliRunner().invoke(app, ["search", "x"], env={**cli_env, "PGASK_EMBED_BACKEND": "tpu"})
    assert result.exit_code == 1
    assert "unknown embedding backend 'tpu'" in result.output and "Traceback" not in result.output


def test_knowledge_base_built_with_torch_is_searched_with_onnx_int8(settings, corpus):
    if "onnx-int8" not in backends.available():
        pytest.skip("onnx-int8 is not available on this machine")
    questions = ["How often should I irrigate my tomatoes?", "what should I use to oil a bike chain",
                 "when is the best time to look at lunar craters", "how do I keep my bread yeast culture alive"]
    with KnowledgeBase(settings, embed_backend="torch") as built:
        built.ingest([corpus])
        before = {q: built.search(q, k=3) for q in questions}
    with KnowledgeBase(settings, embed_backend="onnx-int8") as other:
        assert other.status().embed_backend["backend"] == "onnx-int8"
        after = {q: other.search(q, k=3) for q in questions}
        for q in questions:
            assert after[q][0].chunk_id == before[q][0].chunk_id
            assert after[q][0].similarity == pytest.approx(before[q][0].similarity, abs=0.03)
        # the stored vectors were not re-embedded: unchanged documents stay unchanged
        assert other.ingest([corpus]).unchanged == 4


def test_status_shows_the_backend(cli_env, corpus):
    runner = CliRunner()
    env = {**cli_env, "PGASK_EMBED_BACKEND": "onnx"}
    data = json.loads(runner.invoke(app, ["status", "--json"], env=env).stdout)
    assert data["embed_backend"] == {"requested": "onnx", "backend": "onnx", "isa": backends.cpu_isa()}
    human = runner.invoke(app, ["status"], env=env).stdout
    assert "backend  onnx (set by PGASK_EMBED_BACKEND)" in human


def test_the_instruction_set_read_from_the_kernel_is_the_one_numpy_finds():
    # `pgask status` reads /proc/cpuinfo instead of importing numpy; both must pick the same int8 files
    from pgask.embed import backends

    flags = backends.linux_cpu_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo here: the instruction set comes from numpy")
    assert backends.isa_of(flags) == backends.isa_of(backends.numpy_cpu_flags()) == backends.cpu_isa()
