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

from typing import Sequence

import numpy as np

DTYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


class DirectEncoder:
    def __init__(self, session, tokenizer, *, lower_case: bool):
        self.session = session
        self.tokenizer = tokenizer
        self.lower_case = lower_case
        self.inputs = {i.name: DTYPES.get(i.type, np.int64) for i in session.get_inputs()}
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
        encoding = self.tokenizer.encode(text.lower() if self.lower_case else text)
        values = {"input_ids": encoding.ids, "attention_mask": encoding.attention_mask,
                  "token_type_ids": encoding.type_ids}
        feed = {name: np.array([values[name]], dtype=dtype) for name, dtype in self.inputs.items()}
        tokens = self.session.run([self.output], feed)[0][0]
        vector = tokens.mean(axis=0)  # no padding: every token counts
        return (vector / np.linalg.norm(vector)).astype(np.float32)

    @classmethod
    def for_backend(cls, model, backend: str) -> DirectEncoder | None:
        """The encoder where `backend` runs ONNX Runtime and the model fits this path, else None."""
        return cls.for_model(model) if backend.startswith("onnx") else None


def encode_passages(model, direct: DirectEncoder | None, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """Unit vectors of `texts` (at least one): one text a run through `direct` where there is one,
    else sentence-transformers' encode() in padded batches (torch, cuda, other poolings)."""
    if direct:
        return np.stack([direct(text) for text in texts])
    return model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=False)
