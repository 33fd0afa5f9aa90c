-- Each chunk's length for BM25: its lexeme occurrences (every engine).
-- Placeholders: {schema}, {ts_config}. Safe to run again.

CREATE OR REPLACE FUNCTION {schema}.lexeme_occurrences(tsvector) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(sum(cardinality(positions)), 0)::integer FROM unnest($1)
$$;

-- Knowledge bases made before chunks had Korean keywords get the column (empty, so their
-- tsvectors do not change); keyword_upgrade.sql has put it into fts.
ALTER TABLE {schema}.chunks ADD COLUMN IF NOT EXISTS keywords text NOT NULL DEFAULT '';

-- The expression of chunks.fts again: a generated column cannot read another one.
ALTER TABLE {schema}.chunks ADD COLUMN IF NOT EXISTS fts_length integer
    GENERATED ALWAYS AS ({schema}.lexeme_occurrences(
        to_tsvector({ts_config}::regconfig, heading || ' ' || content || ' ' || keywords))) STORED;
