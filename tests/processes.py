"""Helpers for tests that run pgask commands as servers: a free port, waiting until one answers, stopping it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

PGASK = str(Path(sys.executable).with_name("pgask"))  # the installed command


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(process: subprocess.Popen, url: str, *, seconds: float = 300) -> httpx.Response:
    """GET `url` until it answers; a new process loads torch and the model first, which takes a while."""
    deadline = time.monotonic() + seconds
    while True:
        assert process.poll() is None, f"the server exited: {process.communicate()[1]}"
        assert time.monotonic() < deadline, f"nothing answered at {url} in {seconds:.0f}s"
        try:
            return httpx.get(url, timeout=10)
        except httpx.TransportError:
            time.sleep(0.5)


def stop(process: subprocess.Popen) -> tuple[str, str]:
    """Stop a server (SIGTERM, then SIGKILL if it lingers); what it wrote on stdout and stderr."""
    process.terminate()
    try:
        stdout, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    return stdout or "", stderr or ""
