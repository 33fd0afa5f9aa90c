"""PGASK_EMBED_BACKEND=auto: the fastest backend whose vectors stay within cosine 0.99 of fp32.

Every available backend embeds the same probe passages; each is timed (best of a few
interleaved rounds, so a busy neighbour on a shared machine skews them all alike) and compared
with the fp32 torch vectors. The choice is written next to the model's exports, keyed by CPU
instruction set, core count and library versions, so later processes read it instead of
measuring again.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata, resources
from pathlib import Path

from . import backends
from .direct_encoder import DirectEncoder, encode_passages

MIN_COSINE = 0.99  # mean cosine similarity to the fp32 vectors a backend must keep
ROUNDS = 3


@dataclass
class Choice:
    backend: str
    isa: str
    chunks_per_s: dict[str, float] = field(default_factory=dict)  # probe passages per second, each backend
    cosine: dict[str, float] = field(default_factory=dict)  # mean cosine to fp32 torch, each backend
    min_cosine: dict[str, float] = field(default_factory=dict)
    environment: dict = field(default_factory=dict)


def probe_texts() -> list[str]:
    text = resources.files("pgask").joinpath("data", "probe.txt").read_text(encoding="utf-8")
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def environment(isa: str) -> dict:
    """What the measurement depends on: a change of any of these measures again."""
    versions = {}
    for package in ("torch", "onnxruntime", "sentence-transformers", "optimum-onnx"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    # "passages": how ONNX backends run (one text a run, direct_encoder.py); a change measures again
    return {"isa": isa, "cpus": os.cpu_count(), "int8": backends.int8_file(isa), "passages": "direct", **versions}


def choice_file(cache: Path, name: str, isa: str) -> Path:
    return backends.model_folder(cache, name) / f"auto-{isa}.json"


def cached(cache: Path, name: str, isa: str | None = None) -> Choice | None:
    """The recorded choice for this model and machine, if one was measured with the same libraries."""
    isa = isa or backends.cpu_isa()
    path = choice_file(cache, name, isa)
    try:
        choice = Choice(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return choice if choice.environment == environment(isa) else None


def measure(path: str, name: str, cache: Path, candidates: list[str], isa: str) -> tuple[Choice, object]:
    """Time and check each candidate on the probe passages; returns the choice and its loaded model."""
    texts = probe_texts()
    models = {b: backends.load(path, name, b, cache, isa) for b in candidates}
    # timed as LocalEmbedder.embed_documents runs each backend, so that what is timed is what is used
    encode = {b: (lambda m, direct: lambda: encode_passages(m, direct, texts))(m, DirectEncoder.for_backend(m, b))
              for b, m in models.items()}
    import numpy as np

    vectors = {b: np.asarray(run(), dtype=np.float32) for b, run in encode.items()}  # also warms each up
    best = dict.fromkeys(candidates, 0.0)
    for _ in range(ROUNDS):
        for b, run in encode.items():
            started = time.perf_counter()
            run()
            best[b] = max(best[b], len(texts) / (time.perf_counter() - started))
    reference = vectors["torch"]
    cosines = {b: (v * reference).sum(axis=1) for b, v in vectors.items()}
    choice = Choice(
        backend="torch", isa=isa,
        chunks_per_s={b: round(r, 1) for b, r in best.items()},
        cosine={b: round(float(c.mean()), 4) for b, c in cosines.items()},
        min_cosine={b: round(float(c.min()), 4) for b, c in cosines.items()},
        environment=environment(isa),
    )
    eligible = [b for b in candidates if choice.cosine[b] >= MIN_COSINE]
    choice.backend = max(eligible, key=lambda b: best[b])
    return choice, models[choice.backend]


def choose(path: str, name: str, cache: Path) -> tuple[Choice, object | None]:
    """The recorded choice, or a fresh measurement (recorded, and its model returned loaded)."""
    isa = backends.cpu_isa()
    found = cached(cache, name, isa)
    if found is not None:
        return found, None
    candidates = backends.available(isa)
    if candidates == ["torch"]:
        return Choice("torch", isa, environment=environment(isa)), None
    choice, model = measure(path, name, cache, candidates, isa)
    target = choice_file(cache, name, isa)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(choice), indent=2))
    os.replace(tmp, target)
    return choice, model
