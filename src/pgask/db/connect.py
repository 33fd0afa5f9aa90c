"""Connections: psycopg 3 with pgvector types, a pool for servers, engine detection, masked URLs."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
from pgvector.psycopg import register_vector
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ..errors import PgaskError


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, for anything shown to people."""
    if "://" in url:
        try:
            parts = urlsplit(url)
            parts.password  # noqa: B018 - parsing the port and password can fail too
        except ValueError:
            return url.split("://", 1)[0] + "://<unparseable URL>"
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            url = urlunsplit(parts._replace(netloc=netloc))
        return re.sub(r"(password=)[^&\s]+", r"\1***", url)
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparseable connection string>"
    if "password" in params:
        params["password"] = "***"
    return make_conninfo(**params)


def passwords_in(url: str) -> list[str]:
    """The password of a URL or key=value string, as written and decoded, longest first."""
    found: list[str] = []
    if "://" in url:
        try:
            written = urlsplit(url).password
        except ValueError:
            written = None
        found += [written, unquote(written)] if written else []
        in_query = re.findall(r"password=([^&\s]+)", url)
        found += in_query + [unquote(p) for p in in_query]
    else:
        found += [p.strip("'") for p in re.findall(r"password\s*=\s*('(?:[^'\\]|\\.)*'?|\S+)", url)]
    return sorted({p for p in found if p}, key=len, reverse=True)


def redact(message: str, url: str) -> str:
    """A driver's message about `url` without its password: libpq quotes the parts of a URL it cannot
    parse ("invalid percent-encoded token", "unexpected spaces"), which may be the password itself."""
    for password in passwords_in(url):
        message = message.replace(password, "***")
    return message


def ensure_vector(conn: psycopg.Connection) -> None:
    """Create pgvector if needed and register its types on this connection."""
    has = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
    if not has:
        available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
        if not available:
            raise PgaskError(
                "pgvector is not installed on this Postgres server: install it "
                "(https://github.com/pgvector/pgvector#installation), or unset PGASK_DATABASE_URL "
                "to use the embedded database"
            )
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.commit()
        except psycopg.errors.InsufficientPrivilege as exc:
            conn.rollback()
            raise PgaskError(
                "pgvector is available but not enabled, and this user may not enable it: "
                "ask an administrator to run CREATE EXTENSION vector in this database"
            ) from exc
    register_vector(conn)


DATABASE_HINT = "check PGASK_DATABASE_URL, or unset it to use the embedded database"
URL_EXAMPLE = "postgresql://USER:PASSWORD@HOST:5432/DATABASE"


def connect(url: str, *, autocommit: bool = False, vector: bool = True, hint: str = DATABASE_HINT) -> psycopg.Connection:
    """A connection with clear errors; with `vector`, pgvector is enabled and its types registered
    (a database that only holds tables to read, such as a table source, is left as it is)."""
    try:
        conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split()).removeprefix("connection failed: ") or "connection failed"
        reason = redact(reason.replace(url, mask_url(url)), url)
        raise PgaskError(
            f"cannot connect to Postgres at {mask_url(url)}: {reason} ({hint})"
        ) from exc
    except psycopg.ProgrammingError as exc:
        reason = " ".join(redact(str(exc), url).split())
        raise PgaskError(f"invalid database URL {mask_url(url)}: {reason}; expected the form "
                         f"{URL_EXAMPLE} ({hint})") from exc
    if vector:
        ensure_vector(conn)
    return conn


def detect_engine(conn: psycopg.Connection) -> str:
    """postgres | citus | greenplum | cloudberry, from version() and installed extensions."""
    version = conn.execute("SELECT version()").fetchone()[0].lower()
    if "cloudberry" in version:
        return "cloudberry"
    if "greenplum" in version:
        return "greenplum"
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'").fetchone():
        return "citus"
    return "postgres"
