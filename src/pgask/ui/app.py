"""The chat UI (`pgask ui`): Streamlit over KnowledgeBase.

Answers stream in as they are written, every cited source is one click away, and follow-up
questions are made standalone from the conversation (the rewritten question is shown).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from pgask.config import Settings, load_settings
from pgask.errors import PgaskError
from pgask.kb import KnowledgeBase

st.set_page_config(page_title="pgask", page_icon="💬", layout="centered")


@st.cache_resource(show_spinner="Connecting to the knowledge base and loading the model…")
def knowledge_base(settings: Settings) -> KnowledgeBase:
    """One KnowledgeBase (connection pool, loaded model) per settings, shared by every session."""
    kb = KnowledgeBase(settings)
    kb.health()  # load the model now, not on the first question
    return kb


def show_sources(turn: dict) -> None:
    if turn.get("standalone_question") and turn["standalone_question"] != turn["question"]:
        st.caption(f"↪ searched for: {turn['standalone_question']}")
    for source in turn.get("sources", []):
        name = source.get("table_row") or Path(source["source"]).name  # a table row: "support.tickets #4211"
        where = f"{name} › {source['heading']}" if source["heading"] else name
        with st.expander(f"[{source['n']}] {where} · similarity {source['similarity']:.2f}"):
            st.caption(source["source"])
            st.markdown(source["content"])


def show_turn(turn: dict) -> None:
    with st.chat_message("user"):
        st.markdown(turn["question"])
    with st.chat_message("assistant"):
        if "error" in turn:
            st.error(turn["error"])
            return
        st.markdown(turn["answer"])
        show_sources(turn)


def answer(kb: KnowledgeBase, question: str, history: list[dict], options: dict) -> dict:
    """Ask, streaming the answer into the page as it is written; the finished turn."""
    with st.chat_message("user"):
        st.markdown(question)
    with st.chat_message("assistant"):
        searched_for = st.empty()
        text = st.empty()
        text.markdown("_Searching…_")
        written = ""
        try:
            for kind, value in kb.ask_events(question, history=history, **options):
                if kind == "question" and value != question:
                    searched_for.caption(f"↪ searching for: {value}")
                elif kind == "token":
                    written += value
                    text.markdown(written + "▌")
                elif kind == "answer":
                    result = value.as_dict()
        except PgaskError as exc:
            st.error(str(exc))
            return {"question": question, "error": str(exc)}
        searched_for.empty()
        text.markdown(result["answer"])
        show_sources(result)
    return result


MODES = {"hybrid": "Hybrid (meaning + keywords)", "vector": "Meaning (vector)", "keyword": "Keywords (BM25)"}


def sidebar(settings: Settings) -> dict:
    """The retrieval options chosen in the sidebar, as keyword arguments of `ask`."""
    with st.sidebar:
        st.header("pgask")
        if st.button("New conversation", icon=":material/add_comment:", width="stretch"):
            st.session_state.turns = []
        k = st.slider("Passages (k)", min_value=1, max_value=20, value=min(settings.top_k, 20),
                      help="How many passages an answer is written from.")
        threshold = st.slider("Similarity threshold", min_value=0.0, max_value=1.0, value=settings.threshold, step=0.05,
                              help="Passages less similar to the question than this are left out.")
        mode = st.selectbox("Search", options=list(MODES), format_func=MODES.get,
                            index=list(MODES).index(settings.search_mode) if settings.search_mode in MODES else 0,
                            help="How passages are found: by meaning, by keywords, or both fused by rank.")
        source = st.text_input("Only sources starting with", placeholder="e.g. docs/admin_guide/",
                               help="Answer from the documents under this path or prefix only.").strip()
        if settings.llm_configured:
            st.caption(f"Answers written by {settings.llm_model}.")
        else:
            st.caption("Extractive answers: no language model configured "
                       "(set OPENAI_API_KEY or PGASK_LLM_BASE_URL for written answers).")
    return {"k": k, "threshold": threshold, "mode": mode, "source": source or None}


def main() -> None:
    settings = load_settings()
    try:
        kb = knowledge_base(settings)
    except PgaskError as exc:
        st.error(str(exc))
        st.stop()
    options = sidebar(settings)
    st.session_state.setdefault("turns", [])
    question = st.chat_input("Ask a question about your documents", max_chars=4000)
    if not st.session_state.turns and not question:
        st.markdown("#### Ask about your documents")
        st.caption("Every answer cites its sources; follow-up questions are understood from the conversation.")
    for turn in st.session_state.turns:
        show_turn(turn)
    if question:
        history = [m for t in st.session_state.turns if "answer" in t
                   for m in ({"role": "user", "content": t["question"]}, {"role": "assistant", "content": t["answer"]})]
        st.session_state.turns.append(answer(kb, question, history, options))


main()
