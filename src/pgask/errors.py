"""One exception type for everything a user can fix; its message is the one line they see."""


class PgaskError(Exception):
    """A problem the user can act on. str(error) says what went wrong and what to do."""


class ModelMismatch(PgaskError):
    """The knowledge base was built with another embedding model."""


class ModelAPIError(PgaskError):
    """A model API (chat or embeddings) failed or refused the request: not the caller's input."""
