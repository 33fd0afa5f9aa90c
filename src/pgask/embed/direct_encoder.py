"""Texts embedded straight through the ONNX Runtime session of the loaded model, one text a run.

sentence-transformers' encode() is built for padded batches: around the model it spends time on
the transformers tokenizer wrapper, torch tensors and the pooling module (about 2.5 ms on one
short question, a third of its embedding time with int8 weights), and a batch pads every text
to its longest one. This path runs the same session on each text's own tokens and pools them the
way the model's Pooling module does (mean over the tokens, then unit length), so it gives the
same vector. One text a run has two more reasons than speed:

- on a CPU, a run of one ~200-token text is already a large enough matrix product to keep the
  cores busy, and no padding is computed (measured on gpdb-docs chunks with int8 weights: 71.6
  chunks/s against 57.6 for encode() in batches of 32);
- the int8 model quantizes activations per run, so in a batch a text's vector depends on its
  batch mates (128 gpdb-docs chunks, alone vs in batches of 32 through encode(): cosine 0.9946
  on average, 0.9843 at worst). Alone, a text always gets the same vector, so two ingests of
  one corpus, or an ingest and a question, agree exactly.

It is used only for models whose pipeline is exactly Transformer -> mean Pooling [-> Normalize];
encode() serves the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # numpy loads on first use: commands that embed nothing (`pgask status`) never import it
    import numpy as np

DTYPES = {"tensor(int64)": "int64", "tensor(int32)": "int32"}  # numpy dtype names


class DirectEncoder:
    def __init__(self, session, tokenizer, *, lower_case: bool, pooling: str = "mean"):
        self.session = session
        self.tokenizer = tokenizer
        self.lower_case = lower_case
        self.pooling = pooling  # mean over the tokens, or the first ([CLS]) token's state (BGE models)
        self.inputs = {i.name: DTYPES.get(i.type, "int64") for i in session.get_inputs()}
        outputs = [o.name for o in session.get_outputs()]
        self.output = "last_hidden_state" if "last_hidden_state" in outputs else outputs[0]

    @classmethod
    def for_model(cls, model) -> DirectEncoder | None:
        """An encoder for a SentenceTransformer on ONNX Runtime, or None where this path doesn't fit."""
        import onnxruntime
        from tokenizers import Tokenizer

        modules = list(model)
        names = [type(m).__name__ for m in modules]
        if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
            return None
        pooling = modules[1].get_config_dict()
        if pooling.get("pooling_mode") != "mean" or not pooling.get("include_prompt", True):
            return None
        session = getattr(getattr(modules[0], "auto_model", None), "session", None)
        if not isinstance(session, onnxruntime.InferenceSession):
            return None
        if not {"input_ids", "attention_mask"} <= {i.name for i in session.get_inputs()} <= {
                "input_ids", "attention_mask", "token_type_ids"}:
            return None
        # a copy of the model's fast tokenizer: the model's own one changes its settings on every encode call
        tokenizer = Tokenizer.from_str(model.tokenizer.backend_tokenizer.to_str())
        tokenizer.no_padding()
        tokenizer.enable_truncation(int(model.max_seq_length))
        return cls(session, tokenizer, lower_case=bool(getattr(modules[0], "do_lower_case", False)))

    def __call__(self, text: str) -> np.ndarray:
        import numpy as np

        encoding = self.tokenizer.encode(text.lower() if self.lower_case else text)
        values = {"input_ids": encoding.ids, "attention_mask": encoding.attention_mask,
                  "token_type_ids": encoding.type_ids}
        feed = {name: np.array([values[name]], dtype=dtype) for name, dtype in self.inputs.items()}
        tokens = self.session.run([self.output], feed)[0][0]
        vector = tokens[0] if self.pooling == "cls" else tokens.mean(axis=0)  # no padding: every token counts
        return (vector / np.linalg.norm(vector)).astype(np.float32)

    @classmethod
    def for_backend(cls, model, backend: str) -> DirectEncoder | None:
        """The encoder where `backend` runs ONNX Runtime and the model fits this path, else None."""
        return cls.for_model(model) if backend.startswith("onnx") else None


def offsets_tokenizer(source):
    """A copy of a fast tokenizer that reads whole texts (no truncation, no padding), for chunk
    boundaries: the model's own one changes its settings on every encode call, which must not
    race with the chunker's thread."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(source.to_str())
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def encode_passages(model, direct: DirectEncoder | None, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """Unit vectors of `texts` (at least one): one text a run through `direct` where there is one,
    else sentence-transformers' encode() in padded batches (torch, cuda, other poolings)."""
    if direct:
        import numpy as np

        return np.stack([direct(text) for text in texts])
    return model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=False)


def read_pipeline(folder: Path) -> dict | None:
    """What a saved sentence-transformers folder says about its pipeline, read from its JSON files
    (no torch, no sentence-transformers): {"max_seq_length", "do_lower_case", "dim"} when the
    model is exactly Transformer -> mean Pooling [-> Normalize], the one DirectEncoder computes;
    None for any other model."""
    import json

    try:
        modules = json.loads((folder / "modules.json").read_text())
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
            return None
        if modules[0].get("path", "") not in ("", "."):
            return None
        pooling = json.loads((folder / modules[1]["path"] / "config.json").read_text())
        transformer = json.loads((folder / "sentence_bert_config.json").read_text())
        tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    # sentence-transformers 5 writes {"pooling_mode": "mean"}; earlier versions one flag per mode
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v is True}
    mean = pooling.get("pooling_mode") == "mean" or modes == {"pooling_mode_mean_tokens"}
    if not mean or not pooling.get("include_prompt", True) or not (folder / "tokenizer.json").is_file():
        return None
    # the longest input: sentence_bert_config's max_seq_length (older versions), else the tokenizer's
    # model_max_length (what sentence-transformers 5 reads); transformers' "unset" is a huge number
    longest = transformer.get("max_seq_length") or tokenizer_config.get("model_max_length")
    if not isinstance(longest, int) or not 0 < longest <= 100_000:
        return None
    return {"max_seq_length": longest, "do_lower_case": bool(transformer.get("do_lower_case")),
            "dim": pooling.get("embedding_dimension") or pooling.get("word_embedding_dimension")}


def load_direct(folder: Path, onnx_file: Path, session_options) -> tuple[DirectEncoder, dict] | None:
    """A DirectEncoder built from files alone: ONNX Runtime's session on `onnx_file` and the folder's
    tokenizer.json. The same session and tokenizer sentence-transformers would build, without importing
    torch, transformers or sentence-transformers (seconds of a command's start). None where the model's
    pipeline is not the one DirectEncoder computes."""
    pipeline = read_pipeline(folder)
    if pipeline is None or not onnx_file.is_file():
        return None
    import onnxruntime
    from tokenizers import Tokenizer

    session = onnxruntime.InferenceSession(str(onnx_file), sess_options=session_options,
                                           providers=["CPUExecutionProvider"])
    if not {"input_ids", "attention_mask"} <= {i.name for i in session.get_inputs()} <= {
            "input_ids", "attention_mask", "token_type_ids"}:
        return None
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(pipeline["max_seq_length"])
    return DirectEncoder(session, tokenizer, lower_case=pipeline["do_lower_case"]), pipeline
