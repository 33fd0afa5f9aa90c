"""The local embedder used from two threads at once, as the ingest pipeline does."""

import threading

from pgask.embed import get_embedder
from pgask.config import DEFAULT_MODEL


def test_chunking_in_one_thread_does_not_garble_embedding_in_another():
    embedder = get_embedder(DEFAULT_MODEL)
    texts = [f"Row {i} " + "word " * (i % 7) for i in range(600)]
    errors: list[BaseException] = []

    def chunk() -> None:
        for i in range(300):
            embedder.token_offsets(texts[i: i + 3])

    chunker = threading.Thread(target=chunk)
    chunker.start()
    try:
        vectors = [embedder.embed_documents(texts[i: i + 64]) for i in range(0, 600, 64)]
    except ValueError as exc:  # padded batches of unequal length
        errors.append(exc)
    chunker.join()
    assert errors == []
    assert sum(len(v) for v in vectors) == 600
