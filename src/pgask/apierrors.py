"""Failures of OpenAI-compatible model APIs as one-line errors that say what to check."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from .errors import ModelAPIError


@contextmanager
def api_errors(api: str, where: str, *, model: str, key_variable: str, model_variable: str,
               url_variable: str) -> Iterator[None]:
    """Run model API calls; an SDK error (after the SDK's own retries) becomes a ModelAPIError."""
    import openai

    try:
        yield
    except openai.AuthenticationError as exc:
        raise ModelAPIError(f"the {api} API at {where} refused the key (401): check {key_variable}") from exc
    except openai.NotFoundError as exc:
        raise ModelAPIError(f"the {api} API at {where} has no model {model!r} (404): check {model_variable}") from exc
    except openai.RateLimitError as exc:
        raise ModelAPIError(
            f"the {api} API at {where} is rate limiting requests (429) and retries did not help: "
            "wait a minute and try again, or raise your provider's limits"
        ) from exc
    except openai.APITimeoutError as exc:
        raise ModelAPIError(f"the {api} API at {where} did not answer in time: try again later") from exc
    except openai.APIConnectionError as exc:
        raise ModelAPIError(f"cannot reach the {api} API at {where}: check {url_variable}") from exc
    except openai.BadRequestError as exc:
        reason = " ".join(str(exc.message).split())[:300]
        raise ModelAPIError(f"the {api} API at {where} rejected the request (400): {reason}") from exc
    except openai.APIStatusError as exc:
        raise ModelAPIError(f"the {api} API at {where} failed with HTTP {exc.status_code}: try again later") from exc
