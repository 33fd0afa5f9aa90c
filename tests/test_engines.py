"""Each engine's install script, rendered and checked statement by statement. No Greenplum or
Cloudberry server is available to the tests, so these check what those engines require of the
DDL; the rendered PostgreSQL script is executed for real in test_sql_api.py, and the Citus one on
a real cluster in test_citus.py."""

import re

import pytest
import sqlparse

from pgask.db.schema import DISTRIBUTION, ENGINES, install_script

SCHEMA = "kb"


def statements(engine: str) -> list[str]:
    """The script's statements without comments, whitespace collapsed."""
    script = "\n".join(step.as_string(None) for step in
                       install_script(SCHEMA, engine=engine, model="m", dim=384, ts_config="english"))
    return [" ".join(sqlparse.format(s, strip_comments=True).split()).rstrip(";") for s in sqlparse.split(script)]


def tables(stmts: list[str]) -> dict[str, list[str]]:
    """Each created table and the columns of each of its unique keys."""
    found = {}
    for s in stmts:
        if m := re.match(r'CREATE TABLE IF NOT EXISTS "kb"\.(\w+) \((.*)\)$', s):
            body = m.group(2)
            keys = [cols.replace(" ", "").split(",") for cols in re.findall(r"(?:PRIMARY KEY|UNIQUE) \(([^)]*)\)", body)]
            keys += [[col] for col in re.findall(r"(?:^|,)\s*(\w+) [\w ()]+? (?:PRIMARY KEY|UNIQUE)\b", body)]
            found[m.group(1)] = keys
    return found


DISTRIBUTION_STATEMENT = re.compile(
    r"(SET LOCAL citus\.|SELECT create_(distributed|reference)_table|ALTER TABLE .* SET DISTRIBUTED)")
# BM25 statistics: trigger-kept tables on PostgreSQL, counted at search time on distributed engines
KEYWORD_STATISTICS = re.compile(r".*\b(keyword_terms|keyword_stats\w*|keyword_totals|keyword_document_frequencies)\b")


def shared_part(stmts: list[str]) -> list[str]:
    return [s for s in stmts if not DISTRIBUTION_STATEMENT.match(s) and not KEYWORD_STATISTICS.match(s)]


def test_the_same_statements_run_on_every_engine_but_the_distribution():
    base = statements("postgres")
    assert set(tables(base)) == {"settings", "documents", "chunks", "usage", "query_cache", "keyword_terms",
                                 "keyword_stats"}
    assert tables(base)["chunks"] == [["document_id", "id"]] and tables(base)["documents"] == [["id"]]
    for engine in ENGINES:
        # the same tables, functions and queries on every engine; only the distribution and the
        # way BM25 statistics are kept differ
        assert shared_part(statements(engine)) == shared_part(base)


@pytest.mark.parametrize("engine", sorted(DISTRIBUTION))
def test_distributed_engines_count_keyword_statistics_without_triggers(engine):
    stmts = statements(engine)
    assert not [s for s in stmts if "TRIGGER" in s]  # no triggers on distributed tables
    assert set(tables(stmts)) == {"settings", "documents", "chunks", "usage", "query_cache"}
    defined = {m.group(1) for s in stmts if (m := re.match(r'CREATE OR REPLACE FUNCTION "kb"\.(\w+)', s))}
    assert {"keyword_totals", "keyword_document_frequencies", "keyword_search"} <= defined


def test_postgres_keeps_keyword_statistics_with_statement_triggers():
    stmts = statements("postgres")
    triggers = [s for s in stmts if s.startswith("CREATE TRIGGER")]
    assert triggers and all('ON "kb".chunks' in s and "FOR EACH STATEMENT" in s for s in triggers)


def test_postgres_script_has_no_distribution():
    assert not [s for s in statements("postgres") if DISTRIBUTION_STATEMENT.match(s)]


def test_citus_distributes_documents_and_chunks_colocated_and_references_the_rest():
    stmts = statements("citus")
    calls = {}
    for s in stmts:
        if m := re.match(r"SELECT (create_\w+_table)\(format\('%I\.(\w+)', 'kb'\)::regclass(?:, '(\w+)')?(.*)\) "
                         r"WHERE NOT EXISTS \(SELECT 1 FROM pg_dist_partition WHERE logicalrelid = "
                         r"format\('%I\.(\w+)', 'kb'\)::regclass\)$", s):
            function, table, column, rest, guarded = m.groups()
            assert guarded == table  # each call is skipped once the table is distributed: re-runnable
            calls[table] = (function, column, rest)
    assert calls == {
        "settings": ("create_reference_table", None, ""),
        "usage": ("create_reference_table", None, ""),
        "query_cache": ("create_reference_table", None, ""),
        "documents": ("create_distributed_table", "id", ""),
        "chunks": ("create_distributed_table", "document_id", ", colocate_with => format('%I.documents', 'kb')"),
    }
    # every unique key of a distributed table includes its distribution column
    for table, keys in tables(stmts).items():
        function, column, _ = calls[table]
        if function == "create_distributed_table":
            assert keys and all(column in key for key in keys), table
    # propagating the functions after parallel shard creation needs sequential mode, set before it
    first_call = next(i for i, s in enumerate(stmts) if s.startswith("SELECT create_"))
    assert stmts[first_call - 1] == "SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"
    # (all but lexeme_occurrences, which chunks.fts_length needs: created with the tables, before any shard)
    later = [s for s in stmts if "FUNCTION" in s and ".lexeme_occurrences(" not in s]
    assert stmts.index(later[0]) > first_call
    assert stmts.index(next(s for s in stmts if ".lexeme_occurrences(" in s)) < first_call


@pytest.mark.parametrize("engine", ["greenplum", "cloudberry"])
def test_greenplum_and_cloudberry_distribute_by_the_document_key(engine):
    stmts = statements(engine)
    policies = dict(re.findall(r'^ALTER TABLE "kb"\.(\w+) SET (DISTRIBUTED .+)$', s)[0]
                    for s in stmts if DISTRIBUTION_STATEMENT.match(s))
    assert policies == {"settings": "DISTRIBUTED REPLICATED", "usage": "DISTRIBUTED RANDOMLY",
                        "query_cache": "DISTRIBUTED BY (text_hash)", "documents": "DISTRIBUTED BY (id)", "chunks": "DISTRIBUTED BY (document_id)"}
    # a hash-distributed table's unique keys must contain the distribution key
    for table, keys in tables(stmts).items():
        if m := re.match(r"DISTRIBUTED BY \((\w+)\)", policies[table]):
            assert keys and all(m.group(1) in key for key in keys), table
    # the policies are set once the tables exist, before any row is written
    last_create = max(i for i, s in enumerate(stmts) if s.startswith("CREATE TABLE"))
    first_alter = min(i for i, s in enumerate(stmts) if DISTRIBUTION_STATEMENT.match(s))
    first_insert = min(i for i, s in enumerate(stmts) if s.startswith("INSERT"))
    assert last_create < first_alter < first_insert
    # nothing from Citus but the search settings' check for it (one function text on every engine)
    assert not any("create_distributed_table" in s for s in stmts)
    guarded = "IF current_setting('citus.propagate_set_commands', true) IS NOT NULL THEN SET LOCAL citus."
    assert [s.count("citus") for s in stmts if "citus" in s] == [2] and guarded in next(s for s in stmts if "citus" in s)


def test_only_features_the_mpp_engines_accept():
    """Greenplum 7 (PostgreSQL 12) and Cloudberry (PostgreSQL 14): stored generated columns, GIN and
    B-tree indexes, jsonb and ON CONFLICT on a unique key that holds the distribution key all work;
    identity columns, foreign keys between distributed tables and exclusion constraints are avoided."""
    script = " ".join(statements("greenplum"))
    for avoided in ("GENERATED ALWAYS AS IDENTITY", "GENERATED BY DEFAULT", "REFERENCES", "EXCLUDE", "serial"):
        assert avoided not in script
    assert re.search(r"GENERATED ALWAYS AS \(\s*to_tsvector\('english'::regconfig, "
                     r"heading \|\| ' ' \|\| content \|\| ' ' \|\| keywords\)\) STORED", script)
    assert set(re.findall(r"USING (\w+) \(", script)) == {"gin"}


def test_every_engine_has_its_distribution_file():
    assert set(DISTRIBUTION) == set(ENGINES) - {"postgres"}


# --- status on distributed engines ----------------------------------------------------------------
# Their catalogs, as the Citus and Greenplum documentation describe them, stood in for by views in a
# schema put first on the search path of a real (embedded) Postgres that holds a real knowledge base.

CATALOGS = {
    "citus": """
        CREATE VIEW {c}.citus_tables AS
            SELECT to_regclass(%(s)s || '.chunks') AS table_name, 'distributed'::text AS citus_table_type,
                   'document_id'::text AS distribution_column, 2 AS colocation_id, 32 AS shard_count
            UNION ALL SELECT to_regclass(%(s)s || '.documents'), 'distributed', 'id', 2, 32
            UNION ALL SELECT to_regclass(%(s)s || '.settings'), 'reference', '<none>', 1, 1;
        CREATE FUNCTION {c}.citus_get_active_worker_nodes(OUT node_name text, OUT node_port bigint)
            RETURNS SETOF record LANGUAGE sql AS $$ VALUES ('w1', 5432), ('w2', 5432) $$;""",
    "greenplum": """
        CREATE VIEW {c}.gp_segment_configuration AS
            SELECT * FROM (VALUES (-1, 'p'), (0, 'p'), (1, 'p'), (0, 'm')) AS s(content, role);
        CREATE VIEW {c}.gp_distribution_policy AS
            SELECT to_regclass(%(s)s || '.chunks')::oid AS localoid
            UNION ALL SELECT to_regclass(%(s)s || '.settings')::oid;
        CREATE FUNCTION {c}.pg_get_table_distributedby(oid) RETURNS text LANGUAGE sql AS $$
            SELECT CASE WHEN $1 = to_regclass(%(s)s || '.chunks')::oid THEN 'DISTRIBUTED BY (document_id)'
                        ELSE 'DISTRIBUTED REPLICATED' END $$;""",
}


@pytest.mark.parametrize("engine", ["citus", "greenplum"])
def test_status_reads_nodes_and_distribution_from_the_engine_catalogs(kb, engine):
    from psycopg import sql

    from pgask.cli.admin import distribution_rows
    from pgask.db.cluster import describe

    kb.init()
    catalog = f"{kb.schema}_{engine}_catalog"
    with kb.connection() as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(catalog)))
        for statement in CATALOGS[engine].format(c=sql.Identifier(catalog).as_string(conn)).split(";"):
            if statement.strip():
                conn.execute(statement.replace("%(s)s", sql.Literal(kb.schema).as_string(conn)))
        conn.execute(sql.SQL("SET search_path = {}, pg_catalog, public").format(sql.Identifier(catalog)))
        info = describe(conn, kb.schema, engine)
        conn.rollback()
    if engine == "citus":
        assert info.as_dict() == {"workers": 2, "distribution": {
            "chunks": {"type": "distributed", "column": "document_id", "colocation_id": 2, "shards": 32},
            "documents": {"type": "distributed", "column": "id", "colocation_id": 2, "shards": 32},
            "settings": {"type": "reference", "column": None, "colocation_id": 1, "shards": 1}}}
        assert distribution_rows(info) == [("workers", "2"), ("tables",
            "chunks: distributed by document_id, colocation 2, 32 shards; "
            "documents: distributed by id, colocation 2, 32 shards; settings: reference")]
    else:
        assert info.as_dict() == {"segments": 2, "distribution": {
            "chunks": "DISTRIBUTED BY (document_id)", "settings": "DISTRIBUTED REPLICATED"}}
        assert distribution_rows(info) == [("segments", "2"), ("tables",
            "chunks: DISTRIBUTED BY (document_id); settings: DISTRIBUTED REPLICATED")]
    with kb.connection() as conn:
        assert describe(conn, kb.schema, "postgres") is None
