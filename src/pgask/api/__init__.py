"""The HTTP API (`pgask serve`): FastAPI over one KnowledgeBase.

models      request and response bodies, and their limits
errors      one JSON error shape (OpenAI's) for every route and stream
middleware  the body limit, the bearer token, the bind check, /docs from local files
wire        Server-Sent Events and OpenAI chat completion formats
routes      the routes and create_app
"""

from ..network import is_loopback
from .middleware import DOCS_ASSETS, PUBLIC_PATHS, check_bind, is_public
from .models import (MAX_BODY_BYTES, MAX_MESSAGE_CHARS, MAX_MESSAGES, MAX_PAGE, MAX_QUESTION_CHARS, MODEL_ID,
                     AskRequest, AskResponse, SearchRequest, SearchResponse, Source)
from .routes import create_app

__all__ = ["DOCS_ASSETS", "MAX_BODY_BYTES", "MAX_MESSAGES", "MAX_MESSAGE_CHARS", "MAX_PAGE", "MAX_QUESTION_CHARS",
           "MODEL_ID", "PUBLIC_PATHS", "AskRequest", "AskResponse", "SearchRequest", "SearchResponse", "Source",
           "check_bind", "create_app", "is_loopback", "is_public"]
