-- pgask knowledge base: documents, their chunks with vectors, settings, and the usage ledger.
-- The schema name, vector type and dimension, and text search configuration are filled in with
-- psycopg.sql. Every unique key includes the document id (or, for the query cache, its
-- distribution key), so the same tables distribute on Citus, Greenplum and Cloudberry;
-- distribute_<engine>.sql spreads them across the nodes after this file has run.

CREATE EXTENSION IF NOT EXISTS vector;

CREATE SCHEMA IF NOT EXISTS {schema};

CREATE TABLE IF NOT EXISTS {schema}.settings (
    key   text PRIMARY KEY,
    value jsonb NOT NULL
);

CREATE TABLE IF NOT EXISTS {schema}.documents (
    id           bigint PRIMARY KEY,          -- stable 63-bit hash of source
    source       text NOT NULL,
    title        text NOT NULL DEFAULT '',
    content_hash text NOT NULL,
    metadata     jsonb NOT NULL DEFAULT '{{}}',
    chunk_count  integer NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS {schema}.chunks (
    document_id bigint NOT NULL,
    id          bigint NOT NULL,
    ordinal     integer NOT NULL,
    heading     text NOT NULL DEFAULT '',
    content     text NOT NULL,
    token_count integer NOT NULL,
    embedding   {vector_type}({dim}) NOT NULL, -- halfvec above 2,000 dimensions, so it can be indexed
    keywords    text NOT NULL DEFAULT '',      -- the Korean morphemes of heading and content (korean.py)
    fts         tsvector GENERATED ALWAYS AS (
                    to_tsvector({ts_config}::regconfig, heading || ' ' || content || ' ' || keywords)) STORED,
    PRIMARY KEY (document_id, id)
);

CREATE INDEX IF NOT EXISTS chunks_fts_idx ON {schema}.chunks USING gin (fts);
CREATE INDEX IF NOT EXISTS documents_source_idx ON {schema}.documents (source);
CREATE INDEX IF NOT EXISTS documents_metadata_idx ON {schema}.documents USING gin (metadata jsonb_path_ops);

CREATE TABLE IF NOT EXISTS {schema}.usage (
    at         timestamptz NOT NULL DEFAULT now(),
    kind       text NOT NULL,                 -- embed_documents | embed_query | embed_probe | chat
    provider   text NOT NULL,
    model      text NOT NULL,
    tokens_in  integer NOT NULL DEFAULT 0,
    tokens_out integer NOT NULL DEFAULT 0,
    latency_ms real,
    cost_usd   double precision NOT NULL DEFAULT 0,
    cached     boolean NOT NULL DEFAULT false
);

-- Query vectors of a remote embedding model, found by a hash of the query text (the text itself
-- is not kept): the same question asked again, by any process, costs no second API call.
-- No index is built on these vectors, so the column takes any dimension.
CREATE TABLE IF NOT EXISTS {schema}.query_cache (
    model     text NOT NULL,
    text_hash text NOT NULL,                  -- sha256 of the query text
    embedding vector NOT NULL,
    at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, text_hash)
);
