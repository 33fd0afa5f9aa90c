-- Tables whose rows are documents (`pgask ingest --table`), remembered so `pgask sync` can re-read them.
-- source_url is stored with its password masked (NULL: the knowledge base's own database); the
-- full URL is given again at sync time through --source-url or PGASK_SOURCE_URL.

CREATE TABLE IF NOT EXISTS {schema}.table_sources (
    name             text PRIMARY KEY,          -- SCHEMA.TABLE; its documents are table:SCHEMA.TABLE/<id>
    relation         text NOT NULL,             -- the same table as a quoted SQL name: "schema"."table"
    id_column        text NOT NULL,
    text_columns     text[] NOT NULL,
    title_column     text,
    metadata_columns text[] NOT NULL DEFAULT '{{}}',
    where_predicate  text,
    source_url       text,                      -- password masked; NULL: this database
    watching         boolean NOT NULL DEFAULT false,
    last_sync        timestamptz,
    last_report      jsonb
);
