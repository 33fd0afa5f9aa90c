-- Retrieval in SQL: vector, keyword (BM25) and hybrid (reciprocal rank fusion) search over chunks.
-- pgask's own search calls these functions, so SQL users get exactly what the CLI shows.
--
-- Every function takes an optional `filter` (documents whose metadata contains it, jsonb @>) and
-- `source_prefix` (documents whose source starts with it), and returns the same row shape:
-- document_id, chunk_id, source, title, heading, content,
-- similarity (cosine similarity to query_embedding; NULL without one), score (the ranking's own)
-- and the document's metadata.
-- Placeholders: {schema} (identifier), {schema_name} (the same name as a literal, for dynamic SQL).

-- The condition that keeps chunks of the wanted documents, for dynamic queries whose parameters
-- $3 and $4 are filter and source_prefix. 'true' when unfiltered, so that the planner sees the
-- plain ORDER BY ... LIMIT that an ANN index serves.
CREATE OR REPLACE FUNCTION {schema}.document_restriction(filter jsonb, source_prefix text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN filter = '{{}}' AND source_prefix IS NULL THEN 'true'
        ELSE format('c.document_id IN (SELECT d.id FROM %I.documents d WHERE d.metadata @> $3 '
                    'AND ($4 IS NULL OR starts_with(d.source, $4)))', {schema_name})
    END
$$;

-- Ranked chunk ids -> result rows, in the given order.
CREATE OR REPLACE FUNCTION {schema}.search_results(
    document_ids bigint[], chunk_ids bigint[], scores double precision[], query_embedding vector)
RETURNS TABLE (document_id bigint, chunk_id bigint, source text, title text, heading text, content text,
               similarity double precision, score double precision, metadata jsonb)
LANGUAGE sql STABLE AS $$
    SELECT c.document_id, c.id, d.source, d.title, c.heading, c.content, s.similarity,
           coalesce(r.score, s.similarity), d.metadata
    FROM unnest(document_ids, chunk_ids, scores) WITH ORDINALITY AS r(document_id, chunk_id, score, rank)
    JOIN {schema}.chunks c ON c.document_id = r.document_id AND c.id = r.chunk_id
    JOIN {schema}.documents d ON d.id = r.document_id
    CROSS JOIN LATERAL (SELECT 1 - (c.embedding <=> query_embedding) AS similarity) s
    ORDER BY r.rank
$$;

-- The match_count chunks nearest query_embedding by `metric` (cosine <=>, l2 <->, ip <#>), best
-- first. With an ANN index on that operator the index serves the search; pgvector 0.8+ scans it
-- iteratively until match_count rows pass the filter. If fewer come back than asked for (an
-- older pgvector, or a scan that hit hnsw.max_scan_tuples), the search is repeated exactly over
-- the rows that pass the filter, so it returns match_count rows whenever that many match.
-- STABLE, not VOLATILE: every statement inside then reads the calling query's snapshot, so the
-- ids ranked here and the rows fetched by search_results come from the same moment; a VOLATILE
-- function takes a new snapshot per statement and could fetch a document an ingest half replaced
-- in between. (The set_config calls are transaction-local and only steer the index scan.)
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
    ids bigint[];
    chunk_ids bigint[];
BEGIN
    IF op IS NULL THEN
        RAISE EXCEPTION 'unknown metric %: use cosine, l2 or ip', metric;
    END IF;
    -- relaxed order: the rows are re-sorted by distance below
    IF hnsw_scan IS NOT NULL THEN PERFORM set_config('hnsw.iterative_scan', 'relaxed_order', true); END IF;
    IF ivfflat_scan IS NOT NULL THEN PERFORM set_config('ivfflat.iterative_scan', 'relaxed_order', true); END IF;
    EXECUTE format(
        'SELECT array_agg(n.document_id ORDER BY n.distance, n.document_id, n.id),
                array_agg(n.id ORDER BY n.distance, n.document_id, n.id)
         FROM (SELECT c.document_id, c.id, c.embedding %1$s $1 AS distance
               FROM %2$I.chunks c WHERE %3$s
               ORDER BY c.embedding %1$s $1 LIMIT $2) n',
        op, {schema_name}, restriction)
    INTO ids, chunk_ids USING query_embedding, match_count, coalesce(filter, '{{}}'), source_prefix;
    IF hnsw_scan IS NOT NULL THEN PERFORM set_config('hnsw.iterative_scan', hnsw_scan, true); END IF;
    IF ivfflat_scan IS NOT NULL THEN PERFORM set_config('ivfflat.iterative_scan', ivfflat_scan, true); END IF;

    IF coalesce(cardinality(ids), 0) < match_count THEN
        -- a materialized CTE computes every distance, so no index can cut the scan short
        EXECUTE format(
            'WITH scored AS MATERIALIZED (
                 SELECT c.document_id, c.id, c.embedding %1$s $1 AS distance
                 FROM %2$I.chunks c WHERE %3$s)
             SELECT array_agg(n.document_id ORDER BY n.distance, n.document_id, n.id),
                    array_agg(n.id ORDER BY n.distance, n.document_id, n.id)
             FROM (SELECT * FROM scored ORDER BY distance, document_id, id LIMIT $2) n',
            op, {schema_name}, restriction)
        INTO ids, chunk_ids USING query_embedding, match_count, coalesce(filter, '{{}}'), source_prefix;
    END IF;
    RETURN QUERY SELECT * FROM {schema}.search_results(ids, chunk_ids, NULL, query_embedding);
END
$$;

-- The match_count chunks that best match the words of query_text by Okapi BM25 (k1, b), best
-- first. A chunk matches if it contains any of the query's lexemes (text search configuration
-- of the knowledge base); its length is chunks.fts_length; document frequencies and the
-- average chunk length from keyword_document_frequencies() and keyword_totals() (keyword_stats.sql
-- on PostgreSQL, kept exact by triggers; keyword_stats_scan.sql on distributed engines).
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
    ids bigint[];
    chunk_ids bigint[];
    scores double precision[];
BEGIN
    IF any_term IS NULL THEN  -- nothing but stop words
        RETURN;
    END IF;
    -- setweight marks the query's lexemes (fts carries no weights of its own) so that ts_filter
    -- keeps just those: their positions give the term frequencies without unnesting all of fts
    EXECUTE format(
        'WITH stats AS (
             SELECT s.chunks::float8 AS n, s.lexemes::float8 / greatest(s.chunks, 1) AS avgdl
             FROM %2$I.keyword_totals() s),
         weights AS (
             SELECT t.lexeme, ln(1 + (stats.n - t.chunks + 0.5) / (t.chunks + 0.5)) AS idf
             FROM %2$I.keyword_document_frequencies($5) t, stats),
         ranked AS (
             SELECT c.document_id, c.id,
                    sum(w.idf * cardinality(u.positions) * ($6 + 1)
                        / (cardinality(u.positions) + $6 * (1 - $7 + $7 * c.fts_length / stats.avgdl))) AS score
             FROM %2$I.chunks c
             CROSS JOIN stats
             CROSS JOIN LATERAL unnest(ts_filter(setweight(c.fts, ''A'', $5), ''{{a}}'')) u
             JOIN weights w ON w.lexeme = u.lexeme
             WHERE c.fts @@ $1 AND %1$s
             GROUP BY c.document_id, c.id
             ORDER BY score DESC, c.document_id, c.id
             LIMIT $2)
         SELECT array_agg(r.document_id ORDER BY r.score DESC, r.document_id, r.id),
                array_agg(r.id ORDER BY r.score DESC, r.document_id, r.id),
                array_agg(r.score ORDER BY r.score DESC, r.document_id, r.id)
         FROM ranked r',
        restriction, {schema_name})
    INTO ids, chunk_ids, scores
    USING any_term, match_count, coalesce(filter, '{{}}'), source_prefix, terms, k1, b;
    RETURN QUERY SELECT * FROM {schema}.search_results(ids, chunk_ids, scores, query_embedding);
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
