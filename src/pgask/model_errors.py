"""Failures of OpenAI-compatible model APIs as one-line errors that say what to check."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from .errors import ModelAPIError


@contextmanager
def api_errors(api: str, where: str, *, model: str, key_variable: str, prefix: str, timeout: float,
               retries: int) -> Iterator[None]:
    """Run model API calls; an SDK error (after the SDK's own `retries`) becomes a ModelAPIError.

    `prefix` names the API's settings: PGASK_LLM or PGASK_EMBED (_MODEL, _BASE_URL, _TIMEOUT, _MAX_RETRIES).
    """
    import openai

    tried = f"after {retries} {'retry' if retries == 1 else 'retries'}"
    try:
        yield
    except openai.AuthenticationError as exc:  # never retried: the same key fails again
        raise ModelAPIError(f"the {api} API at {where} refused the key (401): check {key_variable}") from exc
    except openai.PermissionDeniedError as exc:
        raise ModelAPIError(f"the {api} API at {where} does not let this key use {model!r} (403): "
                            f"check {key_variable} and {prefix}_MODEL") from exc
    except openai.NotFoundError as exc:
        raise ModelAPIError(f"the {api} API at {where} has no model {model!r} (404): check {prefix}_MODEL") from exc
    except openai.RateLimitError as exc:
        raise ModelAPIError(
            f"the {api} API at {where} is rate limiting requests (429) and {retries} retries did not help: "
            "wait a minute and try again, or raise your provider's limits"
        ) from exc
    except openai.APITimeoutError as exc:
        raise ModelAPIError(f"the {api} API at {where} did not answer within {timeout:g}s ({tried}): "
                            f"try again later, or raise {prefix}_TIMEOUT") from exc
    except openai.APIConnectionError as exc:
        raise ModelAPIError(f"cannot reach the {api} API at {where} ({tried}): check {prefix}_BASE_URL") from exc
    except openai.BadRequestError as exc:
        reason = " ".join(str(exc.message).split())[:300]
        raise ModelAPIError(f"the {api} API at {where} rejected the request (400): {reason}") from exc
    except openai.APIStatusError as exc:
        raise ModelAPIError(f"the {api} API at {where} failed with HTTP {exc.status_code} ({tried}): "
                            "try again later") from exc
    except (openai.APIResponseValidationError, ValueError, AttributeError) as exc:
        # the SDK's parsers fail this way on a body that is not the protocol's JSON (an HTML page,
        # a proxy's error, a truncated answer); the block holds nothing but SDK calls
        raise ModelAPIError(f"the {api} API at {where} answered with something other than OpenAI-compatible "
                            f"JSON ({type(exc).__name__}): check {prefix}_BASE_URL") from exc
    except openai.APIError as exc:  # an error event inside a stream
        reason = " ".join(str(exc.message).split())[:300]
        raise ModelAPIError(f"the {api} API at {where} reported an error: {reason}") from exc
