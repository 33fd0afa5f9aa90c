"""Follow-up questions made standalone, so that retrieval sees what a question is about.

"and how do I do that for Hadoop?" finds nothing useful on its own. With a chat model configured,
the model rewrites it from the conversation. Without one, the key terms of the conversation's
topic (the last question that stood on its own) are added to the follow-up.

The answer is then written for the standalone question alone: earlier answers cite their own
numbered sources, and showing them to the model would mix up the numbers.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

REWRITE_PROMPT = """You turn the last question of a conversation into a standalone question for a document search.

Rules:
- Resolve every reference ("that", "it", "there", "the same") from the earlier turns, and keep every product, feature and term the question needs.
- If the question already stands on its own, return it unchanged.
- Reply with the question only: no answer, no explanation, no quotes."""

RECENT_MESSAGES = 6  # earlier messages the model reads to rewrite a question
MESSAGE_CHARS = 1000  # of each; earlier answers can be long, their gist is at the start

FOLLOW_UP_OPENING = re.compile(
    r"^\W*(and|but|or|also|so|then|what about|how about|what if|same|why|why not|which one|and if)\b", re.I)
REFERENCE = re.compile(r"\b(it|its|that|this|these|those|them|they|their|there|one|ones|same|above|former|latter)\b",
                       re.I)
WORD = re.compile(r"\w[\w.+#/-]*\w|\w")
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be been before being below between both but by
can cannot could did do does doing done down during each else ever few for from further get gets getting got
had has have having he her here hers him his how i if in into is it its itself just let like may me might
more most much must my myself need needs no nor not now of off on once one ones only or other our ours out over
own please same shall she should so some such than that the their theirs them then there these they this
those through to too under until up upon us use used using very via was we were what when where which while
who whom whose why will with would yes you your yours tell explain show want way ways also
""".split())


def key_terms(text: str) -> list[str]:
    """The words of a question that say what it is about, in order, once each."""
    seen: set[str] = set()
    terms = []
    for word in WORD.findall(text):
        folded = word.casefold()
        if folded not in STOPWORDS and folded not in seen:
            seen.add(folded)
            terms.append(word)
    return terms


def is_follow_up(question: str) -> bool:
    """Whether a question leans on the conversation: it opens with a connective, or it is short and
    points back ("how do I install it?"), or it has hardly any terms of its own ("why?")."""
    terms = key_terms(question)
    return bool(FOLLOW_UP_OPENING.match(question) or (REFERENCE.search(question) and len(terms) <= 3)
                or len(terms) <= 1)


def user_questions(history: Sequence[Mapping[str, str]]) -> list[str]:
    return [m["content"] for m in history if m.get("role") == "user" and (m.get("content") or "").strip()]


def topic_question(history: Sequence[Mapping[str, str]]) -> str | None:
    """The last user question that stood on its own; else the first one asked."""
    asked = user_questions(history)
    return next((q for q in reversed(asked) if not is_follow_up(q)), asked[0] if asked else None)


def expand_follow_up(question: str, history: Sequence[Mapping[str, str]]) -> str:
    """The fallback without a model: a follow-up gets the topic's key terms it lacks, in brackets."""
    topic = topic_question(history)
    if topic is None or not is_follow_up(question):
        return question
    own = {t.casefold() for t in key_terms(question)}
    missing = [t for t in key_terms(topic) if t.casefold() not in own]
    return f"{question.strip()} ({' '.join(missing)})" if missing else question


def rewrite_messages(question: str, history: Sequence[Mapping[str, str]]) -> list[dict]:
    """The chat messages that ask a model for the standalone form of `question`."""
    recent = [m for m in history if m.get("role") in ("user", "assistant")][-RECENT_MESSAGES:]
    transcript = "\n".join(f"{m['role']}: {' '.join(m['content'].split())[:MESSAGE_CHARS]}" for m in recent)
    return [
        {"role": "system", "content": REWRITE_PROMPT},
        {"role": "user", "content": f"Conversation:\n{transcript}\n\nLast question: {question}\n\nStandalone question:"},
    ]


def clean_rewrite(reply: str, question: str) -> str:
    """The model's rewrite without decoration; the question itself when the model gave nothing."""
    text = " ".join(reply.split()).strip("\"'` ")
    text = re.sub(r"^(standalone question|question)\s*:\s*", "", text, flags=re.I)
    return text or question
