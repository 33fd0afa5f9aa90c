-- pgask knowledge base: documents, their chunks with vectors, settings, and the usage ledger.
-- Placeholders ({schema}, {vector_type}, {dim}, {ts_config}) are filled with psycopg.sql, never by string formatting.
-- Every unique key includes the document id, so the same DDL distributes on Citus and Greenplum.

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
    fts         tsvector GENERATED ALWAYS AS (to_tsvector({ts_config}::regconfig, heading || ' ' || content)) STORED,
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
