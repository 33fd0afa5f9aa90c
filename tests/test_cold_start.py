"""A command starts with only what it needs: `pgask status` loads no model library (nor numpy), and `pgask search`
on an ONNX backend loads ONNX Runtime and tokenizers, not torch, transformers or sentence-transformers.
(How long each takes is a figure of `pgask bench`, not a test.)"""

import json
import os
import subprocess
import sys

import pytest

MODEL_LIBRARIES = {"torch", "transformers", "sentence_transformers", "optimum"}


def imported(args, env) -> set[str]:
    """Top-level packages a fresh `python -m pgask ARGS` process imported (python -X importtime)."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "pgask", *args], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    assert "pgask" in names  # the listing was read
    return names


@pytest.fixture
def env(cli_env, shared_kb):
    return {**os.environ, **cli_env, "PGASK_SCHEMA": shared_kb.schema}


def test_status_imports_no_model_library(env):
    names = imported(["status", "--json"], env)
    assert not names & (MODEL_LIBRARIES | {"onnxruntime", "tokenizers", "fastapi", "openai", "numpy"}), sorted(names)


def test_search_on_an_onnx_backend_imports_onnx_runtime_only(env, shared_kb):
    backend = shared_kb.embedder.backend
    if not backend.startswith("onnx"):
        pytest.skip(f"the backend here is {backend}: it needs torch")
    shared_kb.search("warm the export and the choice", k=1)  # the export and the auto choice are on disk
    names = imported(["search", "watering tomatoes", "-k", "2", "--json"], env)
    assert "onnxruntime" in names and "tokenizers" in names
    assert not names & MODEL_LIBRARIES, sorted(names & MODEL_LIBRARIES)


def test_the_light_path_gives_the_vectors_of_the_loaded_model(shared_kb):
    """The session and tokenizer read from the export embed exactly as the sentence-transformers model does."""
    from pgask.embed.direct_encoder import DirectEncoder
    from pgask.embed.local import LocalEmbedder

    emb = shared_kb.embedder
    if not emb.backend.startswith("onnx"):
        pytest.skip(f"the backend here is {emb.backend}")
    light = LocalEmbedder(emb.name, backend=emb.backend, cache_dir=emb.cache_dir)
    assert light.direct_encoder is not None and not light.model_loaded  # built from files alone
    loaded = DirectEncoder.for_backend(light.model, emb.backend)  # now load the model the usual way
    texts = ["Water tomato plants deeply, twice a week.", "ÉCLAIRS and Crème brûlée — Ünïcode!", "x " * 400]
    for text in texts:
        assert light.direct_encoder.tokenizer.encode(text).ids == loaded.tokenizer.encode(text).ids
        assert (light.direct_encoder(text) == loaded(text)).all()
    assert light.max_tokens == int(light.model.max_seq_length) - 2
    from tokenizers import Tokenizer

    reference = Tokenizer.from_str(light.model.tokenizer.backend_tokenizer.to_str())  # what chunking used before
    reference.no_truncation()
    reference.no_padding()
    assert light.token_offsets(texts) == [e.offsets for e in reference.encode_batch(texts, add_special_tokens=False)]
