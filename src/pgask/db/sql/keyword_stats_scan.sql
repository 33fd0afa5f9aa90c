-- Corpus statistics for BM25 on distributed engines (Citus, Greenplum, Cloudberry), counted
-- when a keyword search runs: triggers on distributed tables are not available there. The
-- counts are exact, so a search ranks as it does on PostgreSQL (keyword_stats.sql).
-- Document frequencies come from the GIN index on fts, one term at a time; the totals scan
-- chunks in parallel on every node.
-- Placeholders: {schema}, {schema_name}. Safe to run again.

CREATE OR REPLACE FUNCTION {schema}.keyword_totals(OUT chunks bigint, OUT lexemes bigint)
LANGUAGE sql STABLE AS $$
    SELECT count(*), coalesce(sum(c.fts_length), 0) FROM {schema}.chunks c
$$;

CREATE OR REPLACE FUNCTION {schema}.keyword_document_frequencies(terms text[])
RETURNS TABLE (lexeme text, chunks bigint)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    term text;
BEGIN
    FOREACH term IN ARRAY terms LOOP
        lexeme := term;
        -- the lexeme quoted as tsquery input wants (quotes and backslashes doubled)
        EXECUTE format('SELECT count(*) FROM %I.chunks c WHERE c.fts @@ $1', {schema_name})
        INTO chunks USING format('''%s''', replace(replace(term, '\', '\\'), '''', ''''''))::tsquery;
        IF chunks > 0 THEN
            RETURN NEXT;
        END IF;
    END LOOP;
END
$$;
