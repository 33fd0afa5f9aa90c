"""A search's question embedded straight through the ONNX Runtime session of the loaded model.

sentence-transformers' encode() is built for batches: on one short question it spends about
2.5 ms around the model (the transformers tokenizer wrapper, torch tensors, the pooling
module), a third of the question's embedding time with int8 weights. This path runs the same
session on the same tokens and pools them the way the model's Pooling module does (mean over the
tokens, then unit length), so it gives the same vector; it is used only for models whose
pipeline is exactly Transformer -> mean Pooling [-> Normalize], and encode() serves the rest.
"""

from __future__ import annotations

import numpy as np

DTYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


class QueryEncoder:
    def __init__(self, session, tokenizer, *, lower_case: bool):
        self.session = session
        self.tokenizer = tokenizer
        self.lower_case = lower_case
        self.inputs = {i.name: DTYPES.get(i.type, np.int64) for i in session.get_inputs()}
        outputs = [o.name for o in session.get_outputs()]
        self.output = "last_hidden_state" if "last_hidden_state" in outputs else outputs[0]

    @classmethod
    def for_model(cls, model) -> QueryEncoder | None:
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
