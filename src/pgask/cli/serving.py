"""`pgask serve` (the HTTP API) and `ui` (the Streamlit chat)."""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import typer

from .common import JsonOption, emit_json, err, handle_errors, knowledge_base


@handle_errors
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; other than loopback needs PGASK_API_TOKEN."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    as_json: bool = JsonOption,
):
    """Serve the HTTP API (search, ask, documents, OpenAI-compatible chat) until interrupted; OpenAPI at /docs."""
    import uvicorn

    from ..api import check_bind, create_app

    with knowledge_base() as kb:
        check_bind(host, kb.settings.api_token)
        kb.health()  # a bad database URL or model fails here, in one line, not on the first request
        url = f"http://{host}:{port}"
        if as_json:
            emit_json({"url": url, "docs": f"{url}/docs", "auth": kb.settings.api_token is not None})
        else:
            err.print(f"pgask API on {url} (OpenAPI at {url}/docs)"
                      + ("; bearer token required" if kb.settings.api_token else ""))
        logging = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
        logging["handlers"]["access"]["stream"] = "ext://sys.stderr"  # stdout is for --json
        uvicorn.run(create_app(kb), host=host, port=port, log_config=logging)


@handle_errors
def ui(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8501, "--port", min=1, max=65535, help="Port to listen on."),
    as_json: bool = JsonOption,
):
    """Serve the chat UI (Streamlit): streamed answers, their sources, follow-up questions."""
    from ..network import is_loopback

    script = Path(__file__).parent.parent / "ui" / "app.py"
    url = f"http://{host}:{port}"
    if as_json:
        emit_json({"url": url})
    else:
        err.print(f"pgask chat UI on {url}")
    if not is_loopback(host):
        err.print(f"[yellow]warning:[/yellow] the chat UI has no login: anyone who can reach {host} can ask questions")
    command = [sys.executable, "-m", "streamlit", "run", str(script), "--server.address", host,
               "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--client.toolbarMode", "viewer"]
    sys.stdout.flush()
    if as_json:  # Streamlit talks on stdout, which belongs to the one JSON document
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    # Streamlit takes this process over, so that signals (Ctrl-C, a service manager's stop) reach it
    os.execv(sys.executable, command)
