"""Small helpers for the messages people read."""


def plural(count: int, word: str, many: str | None = None) -> str:
    """"1 file", "2 files", "0 files"; `many` for irregular plurals."""
    return f"{count} {word if count == 1 else many or word + 's'}"
