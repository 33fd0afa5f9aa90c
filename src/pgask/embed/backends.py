"""The runtimes a local sentence-transformers model can run on, and how each is loaded.

- torch: the model as published (fp32), the reference every other backend is checked against.
- onnx: the same weights exported to ONNX and run by ONNX Runtime (fp32).
- onnx-int8: that export with dynamically quantized int8 weights for this CPU's instruction set.
- cuda: torch in half precision on an NVIDIA GPU, when torch sees one.

ONNX files are exported on first use and kept under PGASK_HOME/models, one folder per model
and CPU instruction set (the int8 kernels differ between AVX2, AVX-512, VNNI and ARM), so a
later process loads them in a second instead of exporting again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ..errors import PgaskError

BACKENDS = ("torch", "onnx", "onnx-int8", "cuda")
ONNX_FP32 = "onnx/model.onnx"


def cpu_isa() -> str:
    """The widest instruction set ONNX Runtime's int8 kernels can use here; "generic" when none fits."""
    if platform.machine().lower() in ("arm64", "aarch64"):
        return "arm64"
    try:  # numpy probes the CPU at import time; the same table backs numpy.show_runtime()
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as features
    if features.get("AVX512VNNI") or features.get("AVX512_CLX") or features.get("AVX512_ICL"):
        return "avx512_vnni"
    if features.get("AVX512F") and features.get("AVX512BW"):
        return "avx512"
    if features.get("AVX2"):
        return "avx2"
    return "generic"


def int8_file(isa: str) -> str:
    return f"onnx/model_qint8_{isa}.onnx"


def onnx_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "optimum.onnxruntime"))


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def available(isa: str | None = None) -> list[str]:
    """Backends that can run in this environment, the reference (torch) first."""
    isa = isa or cpu_isa()
    found = ["torch"]
    if onnx_available():
        found.append("onnx")
        if isa != "generic":
            found.append("onnx-int8")
    if cuda_available():
        found.append("cuda")
    return found


def model_folder(cache: Path, name: str) -> Path:
    """Where this model's exports and measurements live: readable, and unique per model name."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "--", name.strip("/"))[-60:]
    return cache / f"{readable}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


@contextmanager
def _quiet():
    """Export and load log warnings meant for notebooks ("save the exported model ..."): pgask does save it."""
    loggers = [logging.getLogger(n) for n in ("sentence_transformers", "optimum", "transformers")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _quantization_config(isa: str):
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    # per-channel symmetric weights; dynamic (per-batch) activation ranges, so no calibration data
    return getattr(AutoQuantizationConfig, isa)(is_static=False)


def onnx_export(path: str, name: str, cache: Path, isa: str) -> Path:
    """A folder with the model exported to ONNX (fp32, and int8 for `isa`), exported on first use.

    The export is written to a temporary folder and renamed into place, so a process that
    stops half-way, or two processes exporting at once, never leave a broken model behind.
    """
    from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

    final = model_folder(cache, name) / isa
    if (final / ONNX_FP32).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=final.parent))
    try:
        with _quiet():
            model = SentenceTransformer(path, backend="onnx", device="cpu", local_files_only=True,
                                        model_kwargs={"export": True, "provider": "CPUExecutionProvider"})
            model.save_pretrained(str(tmp))
            if isa != "generic":
                export_dynamic_quantized_onnx_model(model, _quantization_config(isa), str(tmp),
                                                    file_suffix=f"qint8_{isa}")
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / ONNX_FP32).is_file():  # not a concurrent export that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _session_options():
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # Idle intra-op threads sleep instead of spinning: the reader and writer threads of an
    # ingest, and Postgres itself, need those cycles on a small machine.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def load(path: str, name: str, backend: str, cache: Path, isa: str | None = None):
    """A SentenceTransformer for `backend`; ONNX models are exported into `cache` on first use."""
    from sentence_transformers import SentenceTransformer

    if backend not in BACKENDS:
        raise PgaskError(f"unknown embedding backend {backend!r}: use auto, {', '.join(BACKENDS)}")
    if backend == "torch":
        return SentenceTransformer(path, device="cpu", local_files_only=True)
    if backend == "cuda":
        if not cuda_available():
            raise PgaskError("embedding backend cuda: torch sees no CUDA GPU here (use PGASK_EMBED_BACKEND=auto)")
        return SentenceTransformer(path, device="cuda", local_files_only=True).half()
    if not onnx_available():
        raise PgaskError(f"embedding backend {backend} needs ONNX Runtime and Optimum: "
                         "pip install 'sentence-transformers[onnx]' (or use PGASK_EMBED_BACKEND=torch)")
    isa = isa or cpu_isa()
    if backend == "onnx-int8" and isa == "generic":
        raise PgaskError("embedding backend onnx-int8: this CPU has no int8 instruction set ONNX Runtime "
                         "supports (AVX2, AVX-512 or ARM64); use onnx or torch")
    folder = onnx_export(path, name, cache, isa)
    with _quiet():
        return SentenceTransformer(
            str(folder), backend="onnx", device="cpu", local_files_only=True,
            model_kwargs={"file_name": ONNX_FP32 if backend == "onnx" else int8_file(isa),
                          "provider": "CPUExecutionProvider", "session_options": _session_options()},
        )
