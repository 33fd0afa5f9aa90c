"""Questions in another language than the documents', translated before retrieval.

A Korean question over English documents shares no words with them, and a small English
embedding model places it far from its answer. With a chat model configured, the question is
translated to the documents' language for the search (one call, in the usage ledger); the
answer is still written for the question as asked, in its language.
"""

from __future__ import annotations

import unicodedata

# PostgreSQL text search configurations whose language is written in the Latin alphabet
LATIN_SCRIPT = {
    "danish", "dutch", "english", "finnish", "french", "german", "hungarian", "indonesian", "irish",
    "italian", "lithuanian", "norwegian", "portuguese", "romanian", "spanish", "swedish", "turkish",
}

TRANSLATE_PROMPT = """You translate a question into {language} for a search over {language} documents.

Rules:
- Keep product names, commands, parameters, SQL and error messages exactly as written.
- Reply with the translated question only: no answer, no explanation, no quotes."""


def documents_language(text_search_config: str) -> str | None:
    """The documents' language, from the knowledge base's text search configuration ('simple': unknown)."""
    name = text_search_config.rsplit(".", 1)[-1].lower()
    return name if name in LATIN_SCRIPT else None


def non_latin_share(text: str) -> float:
    """The share of a text's letters that are not Latin (Hangul, Han, Cyrillic, ...)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    return sum(not unicodedata.name(c, "").startswith("LATIN") for c in letters) / len(letters)


def needs_translation(question: str, text_search_config: str) -> str | None:
    """The language to translate `question` into before searching, or None when it is already in
    the documents' script (or their language is unknown)."""
    language = documents_language(text_search_config)
    return language if language and non_latin_share(question) > 0.5 else None


def translate_messages(question: str, language: str) -> list[dict]:
    return [
        {"role": "system", "content": TRANSLATE_PROMPT.format(language=language.capitalize())},
        {"role": "user", "content": question},
    ]


def clean_translation(reply: str, question: str) -> str:
    """The model's translation without decoration; the question itself when the model gave nothing."""
    return " ".join(reply.split()).strip("\"'` ") or question
