-- Corpus statistics for BM25 keyword ranking on PostgreSQL, kept exact by triggers on chunks:
-- how many chunks contain each lexeme (document frequency), and how many chunks and lexeme
-- occurrences there are in all. keyword_search reads them through keyword_totals() and
-- keyword_document_frequencies(); distributed engines, where triggers on distributed tables are
-- not available, define the same two functions in keyword_stats_scan.sql.
-- Placeholders: {schema}. Runs in one transaction; safe to run again.

CREATE TABLE IF NOT EXISTS {schema}.keyword_terms (
    lexeme text PRIMARY KEY,
    chunks bigint NOT NULL                -- chunks whose fts contains the lexeme
);

CREATE TABLE IF NOT EXISTS {schema}.keyword_stats (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    chunks    bigint NOT NULL,            -- rows in chunks
    lexemes   bigint NOT NULL             -- lexeme occurrences in all fts values (sum of chunk lengths)
);

-- Every trigger updates keyword_stats before any keyword_terms row: a writer holds the one stats
-- row lock before it takes any term lock, so concurrent writers queue instead of deadlocking.

CREATE OR REPLACE FUNCTION {schema}.keyword_stats_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE {schema}.keyword_stats
    SET chunks = chunks + (SELECT count(*) FROM new_chunks),
        lexemes = lexemes + (SELECT coalesce(sum(n.fts_length), 0) FROM new_chunks n);
    INSERT INTO {schema}.keyword_terms (lexeme, chunks)
    SELECT t.lexeme, count(*) FROM new_chunks n, unnest(n.fts) t GROUP BY t.lexeme
    ON CONFLICT (lexeme) DO UPDATE SET chunks = keyword_terms.chunks + excluded.chunks;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION {schema}.keyword_stats_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE {schema}.keyword_stats
    SET chunks = chunks - (SELECT count(*) FROM old_chunks),
        lexemes = lexemes - (SELECT coalesce(sum(o.fts_length), 0) FROM old_chunks o);
    UPDATE {schema}.keyword_terms k SET chunks = k.chunks - gone.chunks
    FROM (SELECT t.lexeme, count(*) AS chunks FROM old_chunks o, unnest(o.fts) t GROUP BY t.lexeme) gone
    WHERE k.lexeme = gone.lexeme;
    DELETE FROM {schema}.keyword_terms k
    WHERE k.chunks <= 0 AND k.lexeme IN (SELECT t.lexeme FROM old_chunks o, unnest(o.fts) t);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION {schema}.keyword_stats_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE {schema}.keyword_stats SET chunks = 0, lexemes = 0;
    TRUNCATE {schema}.keyword_terms;
    RETURN NULL;
END
$$;

-- Transition tables allow one event per trigger; AFTER UPDATE triggers fire in name order
-- (remove the old row versions, then add the new ones).
DROP TRIGGER IF EXISTS keyword_stats_insert ON {schema}.chunks;
CREATE TRIGGER keyword_stats_insert AFTER INSERT ON {schema}.chunks
    REFERENCING NEW TABLE AS new_chunks FOR EACH STATEMENT EXECUTE FUNCTION {schema}.keyword_stats_add();
DROP TRIGGER IF EXISTS keyword_stats_delete ON {schema}.chunks;
CREATE TRIGGER keyword_stats_delete AFTER DELETE ON {schema}.chunks
    REFERENCING OLD TABLE AS old_chunks FOR EACH STATEMENT EXECUTE FUNCTION {schema}.keyword_stats_remove();
DROP TRIGGER IF EXISTS keyword_stats_update_1_old ON {schema}.chunks;
CREATE TRIGGER keyword_stats_update_1_old AFTER UPDATE ON {schema}.chunks
    REFERENCING OLD TABLE AS old_chunks FOR EACH STATEMENT EXECUTE FUNCTION {schema}.keyword_stats_remove();
DROP TRIGGER IF EXISTS keyword_stats_update_2_new ON {schema}.chunks;
CREATE TRIGGER keyword_stats_update_2_new AFTER UPDATE ON {schema}.chunks
    REFERENCING NEW TABLE AS new_chunks FOR EACH STATEMENT EXECUTE FUNCTION {schema}.keyword_stats_add();
DROP TRIGGER IF EXISTS keyword_stats_truncate ON {schema}.chunks;
CREATE TRIGGER keyword_stats_truncate AFTER TRUNCATE ON {schema}.chunks
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.keyword_stats_clear();

-- First run on a knowledge base that already has chunks: count them once. The triggers above
-- hold a lock on chunks until this transaction commits, so no write can slip in between.
INSERT INTO {schema}.keyword_stats (singleton, chunks, lexemes)
SELECT true,
       (SELECT count(*) FROM {schema}.chunks),
       (SELECT coalesce(sum(fts_length), 0) FROM {schema}.chunks)
ON CONFLICT (singleton) DO NOTHING;

INSERT INTO {schema}.keyword_terms (lexeme, chunks)
SELECT t.lexeme, count(*) FROM {schema}.chunks c, unnest(c.fts) t GROUP BY t.lexeme
ON CONFLICT (lexeme) DO NOTHING;

CREATE OR REPLACE FUNCTION {schema}.keyword_totals(OUT chunks bigint, OUT lexemes bigint)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(max(s.chunks), 0), coalesce(max(s.lexemes), 0) FROM {schema}.keyword_stats s
$$;

CREATE OR REPLACE FUNCTION {schema}.keyword_document_frequencies(terms text[])
RETURNS TABLE (lexeme text, chunks bigint)
LANGUAGE sql STABLE AS $$
    SELECT t.lexeme, t.chunks FROM {schema}.keyword_terms t WHERE t.lexeme = ANY(terms)
$$;
