-- Each chunk's length for BM25: its lexeme occurrences (every engine).
-- Placeholders: {schema}, {ts_config}. Safe to run again.

CREATE OR REPLACE FUNCTION {schema}.lexeme_occurrences(tsvector) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(sum(cardinality(positions)), 0)::integer FROM unnest($1)
$$;

-- chunks.keywords is there: schema.sql makes it, keyword_upgrade.sql adds it to an earlier table.
-- The expression of chunks.fts again: a generated column cannot read another one.
ALTER TABLE {schema}.chunks ADD COLUMN IF NOT EXISTS fts_length integer
    GENERATED ALWAYS AS ({schema}.lexeme_occurrences(
        to_tsvector({ts_config}::regconfig, heading || ' ' || content || ' ' || keywords))) STORED;
