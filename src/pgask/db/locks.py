"""Advisory locks: one ingest at a time per knowledge base, across processes and machines."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from .store import stable_id


@contextmanager
def ingest_lock(connection: Callable, schema: str, notify: Callable[[str], None]) -> Iterator[None]:
    """Hold the ingest lock of the knowledge base in `schema`, waiting (and saying so) while another has it.

    A session-level advisory lock: it is released when the holder finishes, or when its
    connection dies with it (a killed ingest never leaves a stale lock).
    """
    key = stable_id(f"pgask-ingest:{schema}")
    with connection() as conn:
        conn.autocommit = True
        try:
            if not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
                holder = conn.execute(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND ((classid::bigint << 32) | objid::bigint) = %s LIMIT 1", (key,)).fetchone()
                who = f" (server process {holder[0]})" if holder else ""
                notify(f"waiting for another ingest into this knowledge base (schema {schema}){who} to finish")
                conn.execute("SELECT pg_advisory_lock(%s)", (key,))
            yield
        finally:
            if not conn.closed:
                conn.execute("SELECT pg_advisory_unlock_all()")
            conn.autocommit = False
