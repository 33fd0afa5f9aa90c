"""The knowledge base's schema over its life: created for the embedding model, upgraded and checked
against the model when opened, installed as one SQL script, dropped."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import psycopg

from ..config import Settings
from ..errors import PgaskError
from . import schema as db_schema
from .connect import detect_engine


@dataclass
class Installed:
    """What `pgask sql --install` put in the database."""

    schema: str
    engine: str
    functions: list[str]
    plpython: bool  # the PL/Python functions (get_embeddings, ask) are there
    notes: list[str] = field(default_factory=list)  # why they are not, as the server said

    def as_dict(self) -> dict:
        return asdict(self)


class KnowledgeSchema:
    """`embedder()` gives the configured model (its name and size shape the tables); `on_open` runs
    once the schema is known to exist (the ledger starts writing then)."""

    def __init__(self, connection: Callable, settings: Settings, embedder: Callable, *,
                 on_open: Callable[[], None]):
        self.connection, self.settings, self.schema = connection, settings, settings.schema
        self.embedder, self.on_open = embedder, on_open
        self.ready = False
        self.vector_type = "vector"

    def ensure(self, *, create: bool) -> bool:
        """True when the schema exists (created if `create`); refuses a database of another model."""
        if self.ready:
            return True
        emb = self.embedder()
        with self.connection() as conn:
            if db_schema.exists(conn, self.schema):
                self.check_model(conn)
                db_schema.upgrade(conn, self.schema, detect_engine(conn))
            elif create:
                db_schema.create(conn, self.schema, model=emb.name, dim=emb.dim,
                                 ts_config=self.settings.text_search_config, engine=detect_engine(conn))
            else:
                return False
            self.opened(conn)
        return True

    def require(self) -> None:
        if not self.ensure(create=False):
            raise PgaskError("the knowledge base is empty: run `pgask ingest PATH` first")

    def check_model(self, conn: psycopg.Connection) -> None:
        """Refuse an existing knowledge base of another model. A remote model of unknown size takes
        the size the knowledge base records (no API call); one of another name is refused unasked."""
        emb = self.embedder()
        if emb.known_dim is None:
            built = db_schema.read_settings(conn, self.schema).get("embedding") or {}
            if built.get("model") == emb.name:
                emb.dim = built["dim"]
            dim = emb.known_dim
        else:
            dim = emb.dim
        db_schema.check_model(conn, self.schema, model=emb.name, dim=dim)

    def opened(self, conn: psycopg.Connection) -> None:
        """The schema exists: note its vector type and start writing the ledger."""
        self.vector_type = (db_schema.read_settings(conn, self.schema).get("embedding") or {}).get("type", "vector")
        self.on_open()
        self.ready = True

    def drop(self) -> None:
        with self.connection() as conn:
            db_schema.drop(conn, self.schema)
        self.ready = False

    def script(self, engine: str | None = None) -> str:
        """The whole install as one SQL script for `psql`: pgvector, tables, their distribution on
        `engine` (default: the configured database's), settings, SQL and PL/Python functions. It runs
        in one transaction and every statement is idempotent, so it can be applied again."""
        pgvector = None  # a script for a server not seen: a current pgvector
        if engine is None:
            with self.connection() as conn:
                engine = detect_engine(conn)
                pgvector = db_schema.pgvector_version(conn)
        emb = self.embedder()
        steps = db_schema.install_script(self.schema, engine=engine, model=emb.name, dim=emb.dim,
                                         ts_config=self.settings.text_search_config,
                                         vector_type=db_schema.storage_type(emb.dim, pgvector))
        body = "\n\n".join(step.as_string(None).strip() for step in steps)
        return (f"-- pgask: SQL install of schema {self.schema} for {engine}, "
                f"embedding model {emb.name} ({emb.dim} dimensions)\nBEGIN;\n\n{body}\n\nCOMMIT;\n")

    def install(self) -> Installed:
        """Install (or refresh) the tables and the SQL API and say what is there. The PL/Python
        functions are installed only where the server has plpython3u; `notes` says why not."""
        emb = self.embedder()
        notes: list[str] = []
        with self.connection() as conn:
            if db_schema.exists(conn, self.schema):
                self.check_model(conn)
            engine = detect_engine(conn)

            def note(diagnostic) -> None:
                if diagnostic.message_primary.startswith("pgask:"):
                    notes.append(diagnostic.message_primary.removeprefix("pgask:").strip())

            conn.add_notice_handler(note)
            try:
                db_schema.create(conn, self.schema, model=emb.name, dim=emb.dim,
                                 ts_config=self.settings.text_search_config, engine=engine)
            finally:
                conn.remove_notice_handler(note)
            functions = db_schema.functions(conn, self.schema)
            self.opened(conn)
        return Installed(self.schema, engine, functions, "ask" in functions, notes)
