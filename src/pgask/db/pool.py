"""The knowledge base's database: its URL (the embedded server's unless one is configured) and a
connection pool opened on first use."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import psycopg

from ..config import Settings
from .connect import connect


class Database:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._url: str | None = None
        self._pool = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        if self._url is None:
            if self.settings.database_url:
                self._url = self.settings.database_url
            else:
                from .embedded import embedded_url

                self._url = embedded_url(self.settings.home)
        return self._url

    @property
    def pool(self):
        with self._lock:
            if self._pool is None:
                from pgvector.psycopg import register_vector
                from psycopg_pool import ConnectionPool

                connect(self.url).close()  # clear errors for bad URLs; creates pgvector if missing

                def configure(conn: psycopg.Connection) -> None:
                    register_vector(conn)
                    conn.commit()

                self._pool = ConnectionPool(
                    self.url, min_size=1, max_size=self.settings.pool_size, configure=configure,
                    kwargs={"connect_timeout": 10}, open=True, name="pgask",
                )
        return self._pool

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self.pool.connection() as conn:
            yield conn

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
