-- A knowledge base whose chunks.fts was made before chunks had Korean keywords
-- (korean.py) gets fts and fts_length again with the keywords in them. Their values do not change
-- (every existing chunk's keywords are empty), so the BM25 statistics stay exact; the GIN index
-- goes with the old column and is built again (Citus carries the DDL to its shards; inside
-- this block, since Citus cannot forward a CREATE INDEX on a distributed table that arrives
-- in a string of several statements, as schema.sql's do). Placeholders: {schema}, {schema_name},
-- {ts_config}. Runs before keyword_length.sql, which adds fts_length back; safe to run again.

DO $$
BEGIN
    IF (SELECT pg_get_expr(d.adbin, d.adrelid) NOT LIKE '%keywords%'
        FROM pg_attrdef d
        JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
        WHERE d.adrelid = format('%I.chunks', {schema_name})::regclass AND a.attname = 'fts') THEN
        ALTER TABLE {schema}.chunks ADD COLUMN IF NOT EXISTS keywords text NOT NULL DEFAULT '';
        ALTER TABLE {schema}.chunks DROP COLUMN fts, DROP COLUMN IF EXISTS fts_length;
        ALTER TABLE {schema}.chunks ADD COLUMN fts tsvector GENERATED ALWAYS AS (
            to_tsvector({ts_config}::regconfig, heading || ' ' || content || ' ' || keywords)) STORED;
        CREATE INDEX IF NOT EXISTS chunks_fts_idx ON {schema}.chunks USING gin (fts);
    END IF;
END
$$;
