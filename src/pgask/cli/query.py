"""`pgask search`, `ask` and `chat`."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer
from rich.markup import escape

from ..config import MAX_K
from ..errors import PgaskError
from .common import (
    FilterOption, JsonOption, Metric, Mode, ModeOption, OldKOption, SourceOption, cited, emit_json, err,
    handle_errors, knowledge_base, out, shown_source, within)


def _selection_named(filters: List[str], source: Optional[str]) -> str:
    """' in documents with format=md and source starting with docs/': what a search was limited to."""
    parts = ([f"with {' and '.join(filters)}"] if filters else []) + (
        [f"whose source starts with {source}"] if source else [])
    return (" in documents " + " and ".join(parts)) if parts else ""


def ranking_score(hit, mode: str) -> str:
    """The number a passage was ranked by, so that the numbers shown fall with the rank: cosine
    similarity (vector), BM25 (keyword), reciprocal-rank fusion (hybrid: small numbers, 4 places)."""
    score = hit.similarity if hit.score is None else hit.score
    return f"{score:.4f}" if mode == "hybrid" else f"{score:.3f}"


def _print_hits(hits, query: str, limited_to: str = "", mode: str = "hybrid") -> None:
    if not hits:
        out.print(f"no matching passages{escape(limited_to)}")
        return
    for rank, hit in enumerate(hits, 1):
        snippet = " ".join(hit.content.split())
        snippet = snippet[:240] + ("…" if len(snippet) > 240 else "")
        out.print(f"[bold]{rank}.[/bold] [green]{ranking_score(hit, mode)}[/green]  [cyan]{escape(cited(hit))}[/cyan]")
        if hit.heading:
            out.print(f"   [dim]{escape(hit.heading)}[/dim]")
        out.print(f"   {escape(snippet)}")


@handle_errors
def search(
    query: str = typer.Argument(..., help="What to look for, in plain words."),
    k: int = typer.Option(5, "-k", "--top-k", callback=within(1, MAX_K), metavar="N",
                          help=f"How many passages (1 to {MAX_K})."),
    old_k: Optional[int] = OldKOption,
    threshold: Optional[float] = typer.Option(None, "--threshold", callback=within(-1, 1), metavar="T",
                                              help="Minimum cosine similarity, -1 to 1 (default: none)."),
    metric: Metric = typer.Option("cosine", "--metric",
                                  help="Vector distance: cosine (<=>), l2 (<->) or ip (<#>)."),
    mode: Optional[Mode] = ModeOption,
    filters: List[str] = FilterOption,
    source: Optional[str] = SourceOption,
    rerank: bool = typer.Option(False, "--rerank",
                                help="Re-order the best passages with the cross-encoder, as ask does."),
    as_json: bool = JsonOption,
):
    """The passages that best match QUERY, best first.

    Each passage is shown with its rank and the score it was ranked by: cosine similarity (vector),
    BM25 (keyword) or the reciprocal-rank fusion of both (hybrid), or with --rerank the
    cross-encoder's probability that it answers, raised when another passage of its document
    answers too; --json gives similarity and score (and relevance, the plain probability).
    """
    k = old_k or k
    with knowledge_base() as kb:
        mode = mode or kb.settings.search_mode
        hits = kb.search(query, k=k, threshold=threshold, metric=metric, mode=mode,
                         filter=filters, source=source, rerank=rerank)
    if as_json:
        emit_json({"query": query, "results": [h.as_dict() for h in hits]})
    else:
        _print_hits(hits, query, _selection_named(filters, source), mode)


def _print_sources(result, mode: str) -> None:
    if result.sources:
        out.print("\n[bold]Sources[/bold]")
        for n, hit in enumerate(result.sources, 1):
            where = hit.cited_as(shown_source(hit.source))
            out.print(f"  [{n}] {escape(where)} [dim]({ranking_score(hit, mode)})[/dim]")


EXTRACTIVE_NOTE = ("[dim]extractive answer: no language model configured "
                   "(set OPENAI_API_KEY or PGASK_LLM_BASE_URL for written answers)[/dim]")


def _print_answer(result, streamed: bool, mode: str, *, note_extractive: bool = True) -> None:
    """The rest of an answer once its tokens (if streamed) are out: the text if not streamed, then the sources."""
    if streamed:
        out.print()
    else:
        if result.mode == "extractive" and note_extractive:
            out.print(EXTRACTIVE_NOTE)
        out.print(escape(result.answer))
    _print_sources(result, mode)


KOption = typer.Option(None, "-k", "--top-k", callback=within(1, MAX_K), metavar="N", show_default=False,
                       help=f"How many passages to answer from (1 to {MAX_K}; default 5, PGASK_TOP_K).")
ThresholdOption = typer.Option(None, "--threshold", callback=within(-1, 1), metavar="T",
                               help="Minimum cosine similarity of a passage, -1 to 1 (default 0.3, PGASK_THRESHOLD).")


@handle_errors
def ask(
    question: str = typer.Argument(..., help="A question about your documents."),
    k: Optional[int] = KOption,
    old_k: Optional[int] = OldKOption,
    threshold: Optional[float] = ThresholdOption,
    mode: Optional[Mode] = ModeOption,
    filters: List[str] = FilterOption,
    source: Optional[str] = SourceOption,
    as_json: bool = JsonOption,
):
    r"""Answer QUESTION from the documents, citing them as \[n].

    The sources are listed in rank order, each with the score it was ranked by: cosine similarity
    (vector), BM25 (keyword) or the reciprocal-rank fusion of both (hybrid).
    """
    k = old_k or k
    with knowledge_base() as kb:
        mode = mode or kb.settings.search_mode
        streamed = not as_json and kb.settings.llm_configured
        on_token = (lambda t: out.print(escape(t), end="")) if streamed else None
        result = kb.ask(question, k=k, threshold=threshold, on_token=on_token, mode=mode,
                        filter=filters, source=source)
    if as_json:
        emit_json(result.as_dict())
    else:
        _print_answer(result, streamed, mode)


@handle_errors
def chat(
    k: Optional[int] = KOption,
    old_k: Optional[int] = OldKOption,
    threshold: Optional[float] = ThresholdOption,
    as_json: bool = JsonOption,
):
    """Ask questions one after another; follow-ups ("and for Hadoop?") are understood from the conversation.

    Reads one question per line until end of input. /new starts a new conversation, /quit leaves.
    With --json, prints {"turns": [...]} at the end.
    """
    k = old_k or k
    prompt = err if as_json or not sys.stdin.isatty() else out
    turns: list[dict] = []
    history: list[dict] = []
    with knowledge_base() as kb:
        streamed = not as_json and kb.settings.llm_configured
        if not as_json:
            err.print("[dim]Ask about your documents. /new starts a new conversation; /quit or Ctrl-D leaves.[/dim]")
            if not kb.settings.llm_configured:
                err.print(EXTRACTIVE_NOTE.replace("extractive answer", "extractive answers"))
        while True:
            try:
                question = prompt.input("[bold cyan]you›[/bold cyan] ").strip()
            except EOFError:
                break
            if question in ("/quit", "/exit"):
                break
            if question == "/new":
                history.clear()
                err.print("[dim]new conversation[/dim]")
                continue
            if not question:
                continue

            def show_question(standalone: str, asked: str = question) -> None:
                if standalone != asked and not as_json:
                    out.print(f"[dim]↪ searching for: {escape(standalone)}[/dim]")

            on_token = (lambda t: out.print(escape(t), end="")) if streamed else None
            try:
                result = kb.ask(question, history=history, k=k, threshold=threshold, on_token=on_token,
                                on_question=show_question)
            except PgaskError as exc:  # one bad turn does not end the conversation
                err.print(f"[red]Error:[/red] {escape(str(exc))}")
                turns.append({"question": question, "error": str(exc)})
                continue
            turns.append(result.as_dict())
            history += [{"role": "user", "content": question}, {"role": "assistant", "content": result.answer}]
            if not as_json:
                _print_answer(result, streamed, kb.settings.search_mode, note_extractive=False)
                out.print()
    if as_json:
        emit_json({"turns": turns})
