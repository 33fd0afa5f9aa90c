"""Questions to answers: the standalone question, its translation, retrieval (with re-ranking),
the answer by the chat model or extracted, and the model calls it cost."""

from __future__ import annotations

import queue
import threading
from dataclasses import replace
from functools import cached_property
from typing import Any, Callable, Iterator, Mapping, Sequence

from . import answer as answering
from . import answerability
from . import conversation
from . import rerank as reranking
from . import search as searching
from . import translation
from .config import Settings
from .embed.cached import CachedQueries
from .errors import PgaskError
from .search import Hit, Selection
from .usage import Call, sum_calls


class Asker:
    """Search and ask over one knowledge base; `embedder()` and `ledger()` are the knowledge base's."""

    def __init__(self, connection: Callable, settings: Settings, embedder: Callable, ledger: Callable):
        self.connection, self.settings, self.schema = connection, settings, settings.schema
        self.embedder, self.ledger = embedder, ledger
        self.queries = CachedQueries(embedder, connection, settings.schema, ledger)

    def retrieve(self, query: str, *, k: int, selection: Selection, embedding=None,
                 threshold: float | None = None, rerank: bool = False, **options) -> list[Hit]:
        """`k` hits; with `rerank`, the re-ranker's pick of a deeper list (search shows what the SQL
        functions return, answers read the re-ranked passages). `threshold` applies to what is kept."""
        if embedding is None:
            embedding = self.queries.embed_query(query)

        def fetch(depth: int) -> list[Hit]:
            with self.connection() as conn:
                # the settings win; else search reads what `pgask index` recorded, in the same round trip
                return searching.search(conn, self.schema, query, embedding, mode=selection.mode, k=depth,
                                        filter=selection.filter, source=selection.source,
                                        ef_search=self.settings.hnsw_ef_search, probes=self.settings.ivfflat_probes,
                                        **options)

        return reranking.retrieve(self.settings, query, k, fetch, rerank=rerank, threshold=threshold)

    def ask(self, question: str, *, selection: Selection, history: Sequence[Mapping[str, str]] = (),
            k: int | None = None, threshold: float | None = None, on_token: Callable[[str], None] | None = None,
            on_question: Callable[[str], None] | None = None) -> answering.Answer:
        if not question or not question.strip():
            raise PgaskError("the question is empty")
        with self.ledger().collect() as calls:  # the model calls this answer cost
            standalone = self.standalone_question(question, history)
            if on_question:
                on_question(standalone)
            searched = self.search_question(standalone)
            vector = self.queries.embed_query(searched)
            hits = self.retrieve(searched, embedding=vector, k=k or self.settings.top_k, selection=selection,
                                 threshold=threshold, rerank=True)
            result = answering.compose(standalone, vector, hits, embed=self.embedder().embed_documents,
                                       settings=self.settings,
                                       model=self.chat_model if self.settings.llm_configured else None,
                                       on_token=on_token, threshold=threshold, unmentioned=self.unmentioned(searched))
            if result.usage:  # the chat model wrote it, or read the sources and found no answer
                self.record_chat(result.usage)
        result.usage = dict(result.usage or {}, **sum_calls(calls))
        return replace(result, question=question, standalone_question=standalone)

    def unmentioned(self, question: str) -> list[str]:
        """The names written as code in `question` that no document mentions (answerability.py)."""
        terms = answerability.code_terms(question)
        if not terms:
            return []
        with self.connection() as conn:
            return searching.unmentioned(conn, self.schema, terms)

    def search_question(self, question: str) -> str:
        """What to search for: `question`, or with a chat model configured, its translation into the
        documents' language when it is written in another script (a Korean question, English docs)."""
        language = translation.needs_translation(question, self.settings.text_search_config)
        if language is None or not self.settings.llm_configured:
            return question
        reply, info = self.chat_model.complete(translation.translate_messages(question, language))
        self.record_chat(info)
        return translation.clean_translation(reply, question)

    def standalone_question(self, question: str, history: Sequence[Mapping[str, str]] = ()) -> str:
        """`question` rewritten to stand on its own: by the chat model if configured, else by adding the
        conversation's key terms to a follow-up. Unchanged without history."""
        if not conversation.user_questions(history):
            return question
        if not self.settings.llm_configured:
            return conversation.expand_follow_up(question, history)
        reply, info = self.chat_model.complete(conversation.rewrite_messages(question, history))
        self.record_chat(info)
        return conversation.clean_rewrite(reply, question)

    @staticmethod
    def events(ask: Callable[..., answering.Answer], question: str, **options: Any) -> Iterator[tuple[str, Any]]:
        """`ask` as a stream for front-ends: ("question", standalone question), ("token", text)...,
        then ("answer", Answer). The work runs on its own thread; its error is raised here."""
        events: queue.Queue = queue.Queue()

        def work() -> None:
            try:
                events.put(("answer", ask(question, on_question=lambda q: events.put(("question", q)),
                                          on_token=lambda t: events.put(("token", t)), **options)))
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                events.put(("error", exc))

        threading.Thread(target=work, name="pgask-ask", daemon=True).start()
        while True:
            kind, value = events.get()
            if kind == "error":
                raise value
            yield kind, value
            if kind == "answer":
                return

    @cached_property
    def chat_model(self) -> answering.ChatModel:
        return answering.ChatModel.from_settings(self.settings)

    def record_chat(self, info: dict) -> Call:
        """A chat model call in the usage ledger."""
        return self.ledger().record(Call(kind="chat", provider=answering.ChatModel.provider, model=info["model"],
                                         tokens_in=info["tokens_in"], tokens_out=info["tokens_out"],
                                         latency_ms=info["latency_ms"]))
