-- Retrieval in SQL: vector, keyword (BM25) and hybrid (reciprocal rank fusion) search over chunks.
-- pgask's own search calls these functions, so SQL users get exactly what the CLI shows.
--
-- Every function takes an optional `filter` (documents whose metadata contains it, jsonb @>) and
-- `source_prefix` (documents whose source starts with it), and returns the same row shape:
-- document_id, chunk_id, source, title, heading, content,
-- similarity (cosine similarity to query_embedding; NULL without one), score (the ranking's own)
-- and the document's metadata.
-- Placeholders: {schema} (identifier), {schema_name} (the same name as a literal, for dynamic SQL).

-- The condition that keeps chunks of the wanted documents, for dynamic queries over chunks c
-- joined to their documents d whose parameters $3 and $4 are filter and source_prefix. 'true' when
-- unfiltered, so that the planner sees the plain ORDER BY ... LIMIT that an ANN index serves.
CREATE OR REPLACE FUNCTION {schema}.document_restriction(filter jsonb, source_prefix text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN filter = '{{}}' AND source_prefix IS NULL THEN 'true'
        ELSE 'd.metadata @> $3 AND ($4 IS NULL OR starts_with(d.source, $4))'
    END
$$;

-- Replaced by the searches' own queries (schema version 4).
DROP FUNCTION IF EXISTS {schema}.search_results(bigint[], bigint[], double precision[], vector);

-- Each search ranks chunks and reads the rows it returns in one query over chunks joined to their
-- documents, so the rows come from one snapshot on every engine: on Citus a document and its
-- chunks share a shard, and one query reads them together in one snapshot of that worker, while
-- two queries (rank, then fetch by id) could straddle an ingest's commit on a worker. The search
-- functions are PL/pgSQL with EXECUTE (no SQL functions that the planner would inline: Citus cannot
-- plan those once they read distributed tables). On Citus the ORDER BY ... LIMIT goes to every
-- shard, where the shard's ANN index serves it, and the coordinator merges the shards' top rows.

-- The match_count chunks nearest query_embedding by `metric` (cosine <=>, l2 <->, ip <#>), best
-- first. With an ANN index on that operator the index serves the search; pgvector 0.8+ scans it
-- iteratively until match_count rows pass the filter. If fewer come back than asked for (an
-- older pgvector, or a scan that hit hnsw.max_scan_tuples), the search is repeated exactly over
-- the rows that pass the filter, so it returns match_count rows whenever that many match.
-- STABLE, not VOLATILE: every statement inside then reads the calling query's snapshot (on
-- PostgreSQL), so the two scans see the same rows; a VOLATILE function takes a new snapshot per
-- statement. (The set_config calls are transaction-local and only steer the index scan; on Citus
-- set_search_settings, run by pgask before the search, sets them on the workers.)
CREATE OR REPLACE FUNCTION {schema}.vector_search(
    query_embedding vector, match_count integer,
    filter jsonb DEFAULT '{{}}', source_prefix text DEFAULT NULL, metric text DEFAULT 'cosine')
RETURNS TABLE (document_id bigint, chunk_id bigint, source text, title text, heading text, content text,
               similarity double precision, score double precision, metadata jsonb)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    op text := CASE metric WHEN 'cosine' THEN '<=>' WHEN 'l2' THEN '<->' WHEN 'ip' THEN '<#>' END;
    restriction text := {schema}.document_restriction(coalesce(filter, '{{}}'), source_prefix);
    hnsw_scan text := current_setting('hnsw.iterative_scan', true);
    ivfflat_scan text := current_setting('ivfflat.iterative_scan', true);
    -- the rows, column by column, nearest first
    collect constant text := 'SELECT array_agg(n.document_id %1$s), array_agg(n.id %1$s), array_agg(n.source %1$s),
        array_agg(n.title %1$s), array_agg(n.heading %1$s), array_agg(n.content %1$s),
        array_agg(n.similarity %1$s), array_agg(n.metadata %1$s) FROM (%2$s) n';
    nearest_first constant text := 'ORDER BY n.distance, n.document_id, n.id';
    rows_of constant text := 'SELECT c.document_id, c.id, d.source, d.title, c.heading, c.content,
        1 - (c.embedding <=> $1) AS similarity, d.metadata, c.embedding %1$s $1 AS distance
        FROM %2$I.chunks c JOIN %2$I.documents d ON d.id = c.document_id WHERE %3$s';
    ids bigint[]; chunk_ids bigint[]; sources text[]; titles text[]; headings text[]; contents text[];
    similarities double precision[]; metadatas jsonb[];
BEGIN
    IF op IS NULL THEN
        RAISE EXCEPTION 'unknown metric %: use cosine, l2 or ip', metric;
    END IF;
    -- relaxed order: the rows are re-sorted by distance below
    IF hnsw_scan IS NOT NULL THEN PERFORM set_config('hnsw.iterative_scan', 'relaxed_order', true); END IF;
    IF ivfflat_scan IS NOT NULL THEN PERFORM set_config('ivfflat.iterative_scan', 'relaxed_order', true); END IF;
    EXECUTE format(collect, nearest_first,
                   format(rows_of, op, {schema_name}, restriction) || format(' ORDER BY c.embedding %s $1 LIMIT $2', op))
    INTO ids, chunk_ids, sources, titles, headings, contents, similarities, metadatas
    USING query_embedding, match_count, coalesce(filter, '{{}}'), source_prefix;
    IF hnsw_scan IS NOT NULL THEN PERFORM set_config('hnsw.iterative_scan', hnsw_scan, true); END IF;
    IF ivfflat_scan IS NOT NULL THEN PERFORM set_config('ivfflat.iterative_scan', ivfflat_scan, true); END IF;

    IF coalesce(cardinality(ids), 0) < match_count THEN
        -- a materialized CTE computes every distance, so no index can cut the scan short
        EXECUTE format(collect, nearest_first,
                       format('WITH scored AS MATERIALIZED (%s) SELECT * FROM scored n %s LIMIT $2',
                              format(rows_of, op, {schema_name}, restriction), nearest_first))
        INTO ids, chunk_ids, sources, titles, headings, contents, similarities, metadatas
        USING query_embedding, match_count, coalesce(filter, '{{}}'), source_prefix;
    END IF;
    RETURN QUERY
    SELECT r.document_id, r.chunk_id, r.source, r.title, r.heading, r.content, r.similarity, r.similarity,
           r.metadata
    FROM unnest(ids, chunk_ids, sources, titles, headings, contents, similarities, metadatas)
         WITH ORDINALITY AS r(document_id, chunk_id, source, title, heading, content, similarity, metadata, rank)
    ORDER BY r.rank;
END
$$;

-- The match_count chunks that best match the words of query_text by Okapi BM25 (k1, b), best
-- first. A chunk matches if it contains any of the query's lexemes (text search configuration
-- of the knowledge base); its length is chunks.fts_length; document frequencies and the
-- average chunk length from keyword_document_frequencies() and keyword_totals() (keyword_stats.sql
-- on PostgreSQL, kept exact by triggers; keyword_stats_scan.sql on distributed engines), read
-- first; then one query ranks the matching chunks and reads their rows.
CREATE OR REPLACE FUNCTION {schema}.keyword_search(
    query_text text, match_count integer,
    filter jsonb DEFAULT '{{}}', source_prefix text DEFAULT NULL, query_embedding vector DEFAULT NULL,
    k1 double precision DEFAULT 1.2, b double precision DEFAULT 0.75)
RETURNS TABLE (document_id bigint, chunk_id bigint, source text, title text, heading text, content text,
               similarity double precision, score double precision, metadata jsonb)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    config regconfig := (SELECT (s.value #>> '{{}}')::regconfig FROM {schema}.settings s
                         WHERE s.key = 'text_search_config');
    terms text[] := tsvector_to_array(to_tsvector(config, query_text));
    -- any of the lexemes, quoted as tsquery input wants (quotes and backslashes doubled)
    any_term tsquery := (SELECT string_agg(format('''%s''', replace(replace(t, '\', '\\'), '''', '''''')), ' | ')
                         FROM unnest(terms) t)::tsquery;
    restriction text := {schema}.document_restriction(coalesce(filter, '{{}}'), source_prefix);
    total_chunks double precision;
    avgdl double precision;
    lexemes text[];
    idfs double precision[];
BEGIN
    IF any_term IS NULL THEN  -- nothing but stop words
        RETURN;
    END IF;
    SELECT t.chunks, t.lexemes::float8 / greatest(t.chunks, 1) INTO total_chunks, avgdl
    FROM {schema}.keyword_totals() t;
    SELECT array_agg(f.lexeme), array_agg(ln(1 + (total_chunks - f.chunks + 0.5) / (f.chunks + 0.5)))
    INTO lexemes, idfs
    FROM {schema}.keyword_document_frequencies(terms) f;
    IF lexemes IS NULL THEN  -- no chunk has any of the words
        RETURN;
    END IF;
    -- setweight marks the query's lexemes (fts carries no weights of its own) so that ts_filter
    -- keeps just those: their positions give the term frequencies without unnesting all of fts.
    -- Grouped by both tables' keys, so their other columns can be selected.
    RETURN QUERY EXECUTE format(
        'SELECT c.document_id, c.id, d.source, d.title, c.heading, c.content,
                1 - (c.embedding <=> $8),
                sum(w.idf * cardinality(u.positions) * ($6 + 1)
                    / (cardinality(u.positions) + $6 * (1 - $7 + $7 * c.fts_length / $11))) AS score,
                d.metadata
         FROM %2$I.chunks c
         JOIN %2$I.documents d ON d.id = c.document_id
         CROSS JOIN LATERAL unnest(ts_filter(setweight(c.fts, ''A'', $5), ''{{a}}'')) u
         JOIN unnest($9, $10) AS w(lexeme, idf) ON w.lexeme = u.lexeme
         WHERE c.fts @@ $1 AND %1$s
         GROUP BY c.document_id, c.id, d.id
         ORDER BY score DESC, c.document_id, c.id
         LIMIT $2',
        restriction, {schema_name})
    USING any_term, match_count, coalesce(filter, '{{}}'), source_prefix, terms, k1, b, query_embedding,
          lexemes, idfs, avgdl;
END
$$;

-- Vector and keyword search fused by reciprocal rank fusion: each chunk scores
-- semantic_weight / (rrf_k + its vector rank) + full_text_weight / (rrf_k + its keyword rank),
-- over the top `candidates` (at least match_count) of each ranking.
CREATE OR REPLACE FUNCTION {schema}.hybrid_search(
    query_text text, query_embedding vector, match_count integer,
    full_text_weight double precision DEFAULT 1, semantic_weight double precision DEFAULT 1,
    rrf_k integer DEFAULT 60, candidates integer DEFAULT 100,
    filter jsonb DEFAULT '{{}}', source_prefix text DEFAULT NULL, metric text DEFAULT 'cosine')
RETURNS TABLE (document_id bigint, chunk_id bigint, source text, title text, heading text, content text,
               similarity double precision, score double precision, metadata jsonb,
               vector_rank bigint, keyword_rank bigint)
LANGUAGE sql STABLE AS $$
    WITH semantic AS (
        SELECT * FROM {schema}.vector_search(
            query_embedding, greatest(candidates, match_count), filter, source_prefix, metric) WITH ORDINALITY
    ), keyword AS (
        SELECT * FROM {schema}.keyword_search(
            query_text, greatest(candidates, match_count), filter, source_prefix, query_embedding) WITH ORDINALITY
    ), fused AS (
        SELECT coalesce(s.document_id, k.document_id) AS document_id, coalesce(s.chunk_id, k.chunk_id) AS chunk_id,
               coalesce(s.source, k.source) AS source, coalesce(s.title, k.title) AS title,
               coalesce(s.heading, k.heading) AS heading, coalesce(s.content, k.content) AS content,
               coalesce(s.similarity, k.similarity) AS similarity,
               coalesce(semantic_weight / (rrf_k + s.ordinality), 0)
                 + coalesce(full_text_weight / (rrf_k + k.ordinality), 0) AS score,
               coalesce(s.metadata, k.metadata) AS metadata,
               s.ordinality AS vector_rank, k.ordinality AS keyword_rank
        FROM semantic s FULL JOIN keyword k ON k.document_id = s.document_id AND k.chunk_id = s.chunk_id
    )
    SELECT * FROM fused f ORDER BY f.score DESC, f.document_id, f.chunk_id LIMIT match_count
$$;

-- The transaction-local settings of one search (pgask's search.py runs this before the search,
-- in the search's transaction). ef_search and probes: the caller's (PGASK_HNSW_EF_SEARCH /
-- PGASK_IVFFLAT_PROBES), else those recorded with the metric's index by `pgask index`, else the
-- defaults; ef_search is at least the number of rows the scan must return (depth) and at most
-- pgvector's 1000. A filtered search scans the index iteratively (pgvector 0.8+). `exact` turns
-- index scans off. SET LOCAL, not set_config(): on Citus, with citus.propagate_set_commands =
-- 'local', Citus sends SET LOCAL commands to the workers that run the shard queries, so every
-- shard's index scan runs with these values; Greenplum and Cloudberry dispatch settings to their
-- segments themselves. VOLATILE: a SET is not allowed in a STABLE function.
CREATE OR REPLACE FUNCTION {schema}.set_search_settings(
    depth integer, ef_search integer, default_ef_search integer, probes integer, default_probes integer,
    exact boolean, metric text, filtered boolean) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    recorded_ef_search integer;
    recorded_probes integer;
    iterative boolean := (SELECT string_to_array(e.extversion, '.')::int[] >= '{{0,8}}'
                          FROM pg_extension e WHERE e.extname = 'vector');
BEGIN
    SELECT max((spec->>'ef_search')::int), max((spec->>'probes')::int)
    INTO recorded_ef_search, recorded_probes
    FROM {schema}.settings s CROSS JOIN LATERAL jsonb_array_elements(s.value) spec
    WHERE s.key = 'indexes' AND jsonb_typeof(s.value) = 'array' AND spec->>'metric' = metric;
    IF current_setting('citus.propagate_set_commands', true) IS NOT NULL THEN
        SET LOCAL citus.propagate_set_commands TO 'local';
    END IF;
    EXECUTE format('SET LOCAL hnsw.ef_search = %s',
                   least(1000, greatest(depth, coalesce(ef_search, recorded_ef_search, default_ef_search))));
    EXECUTE format('SET LOCAL ivfflat.probes = %s', coalesce(probes, recorded_probes, default_probes));
    EXECUTE format('SET LOCAL enable_indexscan = %s', CASE WHEN exact THEN 'off' ELSE 'on' END);
    IF filtered AND iterative THEN
        SET LOCAL hnsw.iterative_scan = relaxed_order;
        SET LOCAL ivfflat.iterative_scan = relaxed_order;
    END IF;
END
$$;

-- The terms (names written as code: gp_vmem_protect_limit, --leaf-partition-data, DISTSTYLE)
-- that no chunk contains, as a phrase of the knowledge base's text search configuration, in
-- the order given: a question about a name the documents never mention is one they cannot
-- answer (answerability.py). One EXISTS per term, served by the fts GIN index.
CREATE OR REPLACE FUNCTION {schema}.unmentioned_terms(terms text[])
RETURNS text[]
LANGUAGE plpgsql STABLE AS $$
DECLARE
    config regconfig := (SELECT (s.value #>> '{{}}')::regconfig FROM {schema}.settings s
                         WHERE s.key = 'text_search_config');
    term text;
    phrase tsquery;
    missing text[] := '{{}}';
BEGIN
    FOREACH term IN ARRAY coalesce(terms, '{{}}') LOOP
        phrase := phraseto_tsquery(config, term);
        IF numnode(phrase) > 0 AND NOT EXISTS (SELECT 1 FROM {schema}.chunks c WHERE c.fts @@ phrase) THEN
            missing := missing || term;
        END IF;
    END LOOP;
    RETURN missing;
END
$$;
