"""The runtimes a local sentence-transformers model can run on, and how each is loaded.

- torch: the model as published (fp32), the reference every other backend is checked against.
- onnx: the same weights exported to ONNX and run by ONNX Runtime (fp32).
- onnx-int8: that export with the transformer's operators fused (attention, layer norm, GELU)
  and int8 weights (signed, per output channel; activations quantized per batch).
- cuda: torch in half precision on an NVIDIA GPU, when torch sees one.

ONNX files are exported on first use and kept under PGASK_HOME/models, one folder per model
and CPU instruction set (the int8 kernels differ between AVX2, AVX-512, VNNI and ARM), so a
later process loads them in a second instead of exporting again.
"""

from __future__ import annotations

import functools
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


@functools.cache  # the CPU does not change while a process runs: read its flags once
def cpu_isa() -> str:
    """The widest instruction set ONNX Runtime's int8 kernels can use here; "generic" when none fits."""
    if platform.machine().lower() in ("arm64", "aarch64"):
        return "arm64"
    return isa_of(linux_cpu_flags() or numpy_cpu_flags())


def isa_of(features: set[str]) -> str:
    """The int8 kernels' instruction set for a CPU with these flags (numpy's names)."""
    if features & {"AVX512VNNI", "AVX512_CLX", "AVX512_ICL"}:
        return "avx512_vnni"
    if {"AVX512F", "AVX512BW"} <= features:
        return "avx512"
    if "AVX2" in features:
        return "avx2"
    return "generic"


def linux_cpu_flags() -> set[str] | None:
    """The CPU's flags as the kernel lists them, in numpy's names; None off Linux. A file read, so
    `pgask status` learns the instruction set without importing numpy (a tenth of its time)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    flags = set(line.partition(":")[2].split())
                    return {"AVX512VNNI" if f == "avx512_vnni" else f.upper() for f in flags}
    except OSError:
        pass
    return None


def numpy_cpu_flags() -> set[str]:
    """The CPU features numpy found at import time (the table behind numpy.show_runtime())."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as found
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as found
    return {name for name, present in found.items() if present}


def int8_file(isa: str) -> str:
    return f"onnx/model_fused_qint8_{isa}.onnx"


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
    # onnxruntime.quantization advises "pre-processing" through the root logger
    loggers = [logging.getLogger(n) for n in ("sentence_transformers", "optimum", "transformers", "onnxruntime", None)]
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


def quantize(fp32: Path, target: Path) -> None:
    """Write an int8 version of the ONNX model `fp32` to `target` (atomically).

    The transformer's operators are fused first (ONNX Runtime's BERT fusions: attention, skip
    layer norm, GELU; a model they don't match is left as it is), then every weight is quantized
    to signed int8 per output channel, activations per batch (dynamic, so no calibration data).
    Measured on gpdb-docs chunks with AVX2: 1.2 x the chunks/s of Optimum's unfused AVX2 recipe
    (unsigned weights, which pgask used before) at a better mean cosine to fp32 (0.992 vs 0.990).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    tmp = Path(tempfile.mkdtemp(prefix=".quantize-", dir=target.parent))
    try:
        fused = tmp / "fused.onnx"
        with _quiet():
            # num_heads and hidden_size 0: read from the graph
            optimized = optimize_model(str(fp32), model_type="bert", num_heads=0, hidden_size=0, opt_level=1)
            optimized.save_model_to_file(str(fused))
            quantize_dynamic(fused, tmp / "int8.onnx", weight_type=QuantType.QInt8, per_channel=True,
                             # fused operators (com.microsoft domain) have no inferred output types
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        os.replace(tmp / "int8.onnx", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def onnx_export(path: str, name: str, cache: Path, isa: str) -> Path:
    """A folder with the model exported to ONNX (fp32, and int8 for `isa`), exported on first use.

    The export is written to a temporary folder and renamed into place, so a process that
    stops half-way, or two processes exporting at once, never leave a broken model behind.
    """
    from sentence_transformers import SentenceTransformer

    final = model_folder(cache, name) / isa
    if not (final / ONNX_FP32).is_file():
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=final.parent))
        try:
            with _quiet():
                model = SentenceTransformer(path, backend="onnx", device="cpu", local_files_only=True,
                                            model_kwargs={"export": True, "provider": "CPUExecutionProvider"})
                model.save_pretrained(str(tmp))
            if isa != "generic":
                quantize(tmp / ONNX_FP32, tmp / int8_file(isa))
            try:
                os.rename(tmp, final)
            except OSError:
                if not (final / ONNX_FP32).is_file():  # not a concurrent export that finished first
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if isa != "generic" and not (final / int8_file(isa)).is_file():  # exported by an earlier pgask
        quantize(final / ONNX_FP32, final / int8_file(isa))
    return final


def _session_options():
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # Intra-op threads spin between runs (ONNX Runtime's default), which matters now that each
    # passage is a run of its own. Measured on gpdb-docs/admin_guide (2 cores, int8): spinning
    # gave 108 vs 93 chunks/s model-only, 101 vs 90 end to end (the reader and writer threads
    # and Postgres lose less than the model gains) and 4.1 vs 8.1 ms per search at p50.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
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
