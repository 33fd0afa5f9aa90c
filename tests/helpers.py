"""Helpers the tests share: files and corpora they write, a server they start, what they read
back from a knowledge base. Fixtures are in conftest.py; tests import helpers from here, never
from each other."""

import itertools
import os
import random
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import psycopg
import uvicorn

from pgask.api import create_app
from pgask.config import Secret
from pgask.db.connect import connect
from pgask.ingest.discovery import document_hash, signature
from pgask.ingest.table_rows import TableSpec, read_documents, row_reader
from pgask.kb import KnowledgeBase
from pgask.search import search



def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def make_pdf(path: Path, title: str, paragraphs: list[str]) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    styles = getSampleStyleSheet()
    doc = SimpleDocTemplate(str(path), pagesize=A4, title=title)
    doc.build([Paragraph(p, styles["Normal"]) for p in paragraphs])
    return path


@contextmanager
def serving(kb):
    """create_app(kb) under uvicorn on 127.0.0.1 and a port the OS picks; its base URL."""
    server = uvicorn.Server(uvicorn.Config(create_app(kb), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def remote_kb(settings, api, model="openai:text-embedding-3-small", **overrides) -> KnowledgeBase:
    return KnowledgeBase(settings, embed_model=model, embed_base_url=api.url, openai_api_key=Secret(KEY), **overrides)


def stored(kb) -> list[tuple]:
    """(source, chunk_count, chunk rows, dims, norm of the first vector) for every stored document."""
    with kb.connection() as conn:
        return conn.execute(
            f"""SELECT d.source, d.chunk_count, count(c.id), min(vector_dims(c.embedding::vector)),
                       min(vector_norm(c.embedding::vector)), max(vector_norm(c.embedding::vector))
                FROM {kb.schema}.documents d LEFT JOIN {kb.schema}.chunks c ON c.document_id = d.id
                GROUP BY d.source, d.chunk_count ORDER BY d.source""").fetchall()


def ledger(kb) -> list[tuple]:
    with kb.connection() as conn:
        return conn.execute(f"SELECT kind, tokens_in, cached FROM {kb.schema}.usage ORDER BY at").fetchall()


def short_sections(root, docs: int, sections: int):
    """Markdown files whose every section is one short sentence, so every section is one chunk."""
    things = ["tomatoes", "bicycles", "sourdough", "telescopes", "beehives", "kayaks", "violins", "orchids"]
    for d in range(docs):
        body = "\n\n".join(f"## Part {s}\n\nNote {s} of {d}: how to look after {things[(d + s) % len(things)]} well."
                           for s in range(sections))
        write(root / f"doc{d:03}.md", f"# Topic {d}\n\n{body}\n")
    return root


KEY = "sk-test-0123456789abcdef"


def crash_corpus(root, n=40, seed=7):
    """Markdown files of random database words, a few sections each: a corpus for killing ingests."""
    rng = random.Random(seed)
    words = "replication vacuum segment mirror index planner partition cluster backup restore " \
            "lock memory query table column schema role extension tablespace".split()
    for i in range(n):
        sections = []
        for s in range(rng.randint(2, 3)):
            para = " ".join(rng.choice(words) for _ in range(rng.randint(30, 90)))
            sections.append(f"## Section {s}\n\n{para.capitalize()}.\n")
        (root / f"doc{i:03}.md").write_text(f"# Document {i}\n\n" + "\n".join(sections))
    return root


def count_documents(kb):
    with kb.connection() as conn:
        row = conn.execute("SELECT to_regclass(%s)", (f"{kb.schema}.documents",)).fetchone()[0]
        if row is None:
            return 0
        return conn.execute(f"SELECT count(*) FROM {kb.schema}.documents").fetchone()[0]


def start_ingest(home, schema, corpus):
    env = {**os.environ, "PGASK_HOME": str(home), "PGASK_SCHEMA": schema, "PGASK_DATABASE_URL": "",
           "PGAPPNAME": f"pgask-{schema}"}
    return subprocess.Popen([sys.executable, "-c", SMALL_BATCHES, "ingest", str(corpus), "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_backends_to_end(kb, application_name):
    """The server finishes (aborts, or commits if COMMIT was already sent) a killed client's work
    on its own time: compare only once its sessions are gone."""
    deadline = time.monotonic() + 60
    with kb.connection() as conn:
        conn.autocommit = True
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                           (application_name,)).fetchone()[0]:
            assert time.monotonic() < deadline, "the killed ingest's sessions did not end"
            time.sleep(0.05)
        conn.autocommit = False


# `pgask ingest` with small embedding batches and write transactions: at full size a corpus this
# small is embedded in one batch and stored in one transaction, and there is no "mid-way" to kill.
SMALL_BATCHES = """
import sys
from pgask.cli import main
from pgask.ingest.pipeline import Ingest

init = Ingest.__init__

def small(self, *args, **kwargs):
    init(self, *args, **kwargs)
    self.flow.batch_chunks, self.flow.write_documents = 8, 3

Ingest.__init__ = small
sys.argv[0] = "pgask"
main()
"""


def snapshot(kb):
    """Everything that must match a clean ingest: documents, hashes, chunk counts and contents."""
    with kb.connection() as conn:
        docs = conn.execute(f"SELECT source, content_hash, chunk_count FROM {kb.schema}.documents ORDER BY source").fetchall()
        chunks = conn.execute(
            f"SELECT d.source, c.ordinal, md5(c.content) FROM {kb.schema}.chunks c "
            f"JOIN {kb.schema}.documents d ON d.id = c.document_id ORDER BY 1, 2").fetchall()
        orphans = conn.execute(
            f"SELECT count(*) FROM {kb.schema}.chunks c WHERE NOT EXISTS "
            f"(SELECT 1 FROM {kb.schema}.documents d WHERE d.id = c.document_id)").fetchone()[0]
        short = conn.execute(
            f"SELECT count(*) FROM {kb.schema}.documents d WHERE chunk_count <> "
            f"(SELECT count(*) FROM {kb.schema}.chunks c WHERE c.document_id = d.id)").fetchone()[0]
    return docs, chunks, orphans, short


STABLE = 2  # documents rewritten every round: in every search, always whole


ROUNDS = 5


CHUNK = re.compile(r"Revision (\d+) part (\d+) of (\d+) of (\w+)\.")


def revision(folder, name: str, rev: int) -> None:
    """Document `name` at revision `rev`: 2, 3 or 4 sections of one short sentence, so one chunk each."""
    parts = 2 + rev % 3
    sections = "\n\n".join(f"## Section {p}\n\nRevision {rev} part {p} of {parts} of {name}. Tomatoes need water."
                           for p in range(1, parts + 1))
    write(folder / f"{name}.md", f"# {name} revision {rev}\n\n{sections}\n")


def check(hits, problems: list[str], seen: dict[str, set[int]]) -> None:
    by_document = defaultdict(list)
    for hit in hits:
        by_document[hit.document_id].append(hit)
    names = set()
    for document_hits in by_document.values():
        found = [CHUNK.search(h.content) for h in document_hits]
        if not all(found):
            problems.append(f"a chunk of no known revision: {document_hits}")
            continue
        (rev, parts, name), *others = {(int(m[1]), int(m[3]), m[4]) for m in found}
        title = document_hits[0].title
        if others:
            problems.append(f"{name}: chunks of revisions {sorted([rev] + [o[0] for o in others])} at once")
        elif title != f"{name} revision {rev}":
            problems.append(f"{name}: title {title!r} over chunks of revision {rev}")
        elif sorted(int(m[2]) for m in found) != list(range(1, parts + 1)):
            problems.append(f"{name} revision {rev}: parts {sorted(int(m[2]) for m in found)} of {parts}")
        names.add(name)
        seen[name].add(rev)
    missing = {f"stable{i}" for i in range(STABLE)} - names
    if missing:
        problems.append(f"documents that exist before, during and after every write are missing: {sorted(missing)}")


def ingest_while_searching(kb, folder) -> tuple[list[str], dict[str, set[int]], int]:
    """ROUNDS ingests of changing revisions of `folder` while another thread searches without
    pause: what the searches saw wrong, the revisions each document was seen at, how many ran."""
    for i in range(STABLE):
        revision(folder, f"stable{i}", 0)
    kb.ingest([folder])
    done = threading.Event()
    problems: list[str] = []
    seen: dict[str, set[int]] = defaultdict(set)
    searches = 0
    question = kb.embedder.embed_query("how much water do tomatoes need")

    def search_until_done() -> None:
        nonlocal searches
        try:
            with kb.connection() as conn:
                while not done.is_set() and len(problems) < 5:
                    check(search(conn, kb.schema, "", question, mode="vector", k=100), problems, seen)
                    searches += 1
        except Exception as exc:  # noqa: BLE001 - a failed search is a finding too
            problems.append(f"the search failed: {exc!r}")

    searcher = threading.Thread(target=search_until_done, name="searcher")
    searcher.start()
    try:
        for rev in range(1, ROUNDS + 1):
            for i in range(STABLE):
                revision(folder, f"stable{i}", rev)
            revision(folder, f"added{rev}", rev)  # a new document each round ...
            (folder / f"added{rev - 2}.md").unlink(missing_ok=True)  # ... pruned two rounds later
            report = kb.ingest([folder], prune=True)
            assert (report.updated, report.added, report.deleted, report.failed) == (STABLE, 1, int(rev > 2), [])
    finally:
        done.set()
        searcher.join(timeout=120)
    return problems, seen, searches


DEVICES = ["printer", "laptop", "monitor", "keyboard", "docking station", "phone", "projector", "scanner",
           "router", "headset", "webcam", "tablet"]


PROBLEMS = ["does not turn on after the weekend", "shows a blue screen at start-up", "is very slow since the update",
            "makes a loud clicking noise", "cannot connect to the office network", "loses its settings every day",
            "prints or shows everything in the wrong colours", "overheats after an hour of use",
            "is missing from the asset inventory", "needs a new power adapter", "was dropped and the case is cracked",
            "asks for an administrator password", "keeps disconnecting from the docking station",
            "has a sticky button", "reports that its licence has expired", "is too loud in meetings",
            "shows the wrong date and time", "has a flickering display", "cannot be found by other devices",
            "needs to be moved to another desk", "stopped charging overnight", "has a dead pixel in the corner",
            "beeps three times and stops", "was lent out and not returned", "has an unreadable label"]


ESPRESSO = (4211, "Kitchen espresso machine", "The espresso machine in the staff kitchen leaks water all over the "
            "floor whenever someone steams milk for a cappuccino.")


def ticket_rows(count: int) -> list[tuple[int, str, str, str]]:
    """(id, subject, body, status): distinct helpdesk tickets, the espresso machine among them."""
    pairs = itertools.islice(itertools.product(PROBLEMS, DEVICES), count - 1)
    rows = [(i + 1, f"{device.capitalize()} issue", f"The {device} in room {100 + i} {problem}.",
             "open" if i % 3 else "closed") for i, (problem, device) in enumerate(pairs)]
    return rows + [(*ESPRESSO, "open")]


def make_source(url: str, schema: str, rows: int) -> str:
    """A fresh SCHEMA.tickets table with `rows` tickets; returns its name."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.tickets (id bigint PRIMARY KEY, subject text, body text, status text, "
                     "opened date NOT NULL DEFAULT current_date)")
        with conn.cursor().copy(f"COPY {schema}.tickets (id, subject, body, status) FROM STDIN") as copy:
            for row in ticket_rows(rows):
                copy.write_row(row)
    return f"{schema}.tickets"


def execute(url: str, *statements: str) -> None:
    """Changes made by another client: a connection of its own, committed statement by statement."""
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def stored_rows(kb: KnowledgeBase, table: str) -> dict[str, tuple[str, object]]:
    """row id -> (content hash, updated_at) of the table's documents in the knowledge base."""
    with kb.connection() as conn:
        rows = conn.execute(f"SELECT metadata->>'row_id', content_hash, updated_at FROM {kb.schema}.documents "
                            "WHERE source LIKE %s", (f"table:{table}/%",)).fetchall()
    return {row_id: (digest, updated) for row_id, digest, updated in rows}


def assert_matches_table(kb: KnowledgeBase, spec: TableSpec, url: str | None = None) -> None:
    """Same ids as the table, and each document's hash is that of the row as it reads now."""
    sig = signature(kb.embedder.name, kb.settings.chunk_tokens, kb.settings.overlap_tokens)
    with connect(url or kb.url, vector=False) as conn:
        ids = {str(i) for (i,) in conn.execute(f"SELECT {spec.id_column} FROM {spec.table}")}
        reader = row_reader(conn, spec)
        expected = {doc.metadata["row_id"]: document_hash(doc, sig) for doc in read_documents(conn, reader)}
    have = {row_id: digest for row_id, (digest, _) in stored_rows(kb, spec.table).items()}
    assert set(have) == ids
    assert have == expected


def as_schema_version_4(conn, schema: str) -> tuple:
    """Make a knowledge base's chunks table as schema version 4 made it (fts and fts_length without
    the Korean keywords column); its BM25 totals, which the upgrade must leave as they are."""
    conn.execute(f"ALTER TABLE {schema}.chunks DROP COLUMN fts, DROP COLUMN fts_length, DROP COLUMN keywords")
    conn.execute(f"ALTER TABLE {schema}.chunks ADD COLUMN fts tsvector GENERATED ALWAYS AS "
                 "(to_tsvector('english'::regconfig, heading || ' ' || content)) STORED")
    conn.execute(f"CREATE INDEX chunks_fts_idx ON {schema}.chunks USING gin (fts)")
    conn.execute(f"ALTER TABLE {schema}.chunks ADD COLUMN fts_length integer GENERATED ALWAYS AS "
                 f"({schema}.lexeme_occurrences(to_tsvector('english'::regconfig, heading || ' ' || content))) STORED")
    conn.execute(f"UPDATE {schema}.settings SET value = '4' WHERE key = 'schema_version'")
    conn.commit()
    return conn.execute(f"SELECT count(*), sum(fts_length) FROM {schema}.chunks").fetchone()
