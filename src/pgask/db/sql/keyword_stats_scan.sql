-- Corpus statistics for BM25 on distributed engines (Citus, Greenplum, Cloudberry), counted
-- when a keyword search runs: triggers on distributed tables are not available there. The
-- counts are exact, so a search ranks as it does on PostgreSQL (keyword_stats.sql).
-- Document frequencies come from the GIN index on fts, all terms in one query; the totals scan
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
    -- each lexeme quoted as tsquery input wants (quotes and backslashes doubled)
    queries tsquery[] := ARRAY(SELECT format('''%s''', replace(replace(t, '\', '\\'), '''', ''''''))::tsquery
                               FROM unnest(terms) t);
BEGIN
    -- one query for all the terms (on Citus one round of shard queries, counted per shard and
    -- summed on the coordinator), each term's chunks found through the GIN index on fts
    RETURN QUERY EXECUTE format(
        'SELECT t.term, count(*) FROM unnest($1, $2) AS t(term, query) JOIN %I.chunks c ON c.fts @@ t.query
         GROUP BY t.term', {schema_name})
    USING terms, queries;
END
$$;
