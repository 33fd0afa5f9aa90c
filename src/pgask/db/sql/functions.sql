-- SQL API usable from any client, without Python: the original match_documents and one variant
-- per pgvector distance. Each orders by its distance operator and takes match_count rows first,
-- so an HNSW or IVFFlat index on that operator serves the ORDER BY ... LIMIT; the threshold then
-- filters those rows. similarity is cosine similarity for every variant (stored vectors are unit
-- length, so 1 - L2²/2 and the inner product equal it), so one threshold means the same in each.
-- STABLE PL/pgSQL functions with one query each, planned as a prepared statement whose parameters
-- are the arguments; the index serves it. Not SQL functions: PostgreSQL would inline those into
-- the calling query, which Citus cannot plan once they read distributed tables.

CREATE OR REPLACE FUNCTION {schema}.match_documents(
    query_embedding vector, match_threshold double precision, match_count integer)
RETURNS TABLE (id bigint, content text, similarity double precision, source text, heading text)
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN QUERY
    SELECT c.id, c.content, 1 - c.distance AS similarity, d.source, c.heading
    FROM (
        SELECT ch.document_id, ch.id, ch.content, ch.heading, ch.embedding <=> query_embedding AS distance
        FROM {schema}.chunks ch
        ORDER BY ch.embedding <=> query_embedding
        LIMIT match_count
    ) c
    JOIN {schema}.documents d ON d.id = c.document_id
    WHERE 1 - c.distance >= match_threshold
    ORDER BY c.distance, c.document_id, c.id;
END
$$;

CREATE OR REPLACE FUNCTION {schema}.match_documents_l2(
    query_embedding vector, match_threshold double precision, match_count integer)
RETURNS TABLE (id bigint, content text, similarity double precision, source text, heading text)
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN QUERY
    SELECT c.id, c.content, 1 - c.distance * c.distance / 2 AS similarity, d.source, c.heading
    FROM (
        SELECT ch.document_id, ch.id, ch.content, ch.heading, ch.embedding <-> query_embedding AS distance
        FROM {schema}.chunks ch
        ORDER BY ch.embedding <-> query_embedding
        LIMIT match_count
    ) c
    JOIN {schema}.documents d ON d.id = c.document_id
    WHERE 1 - c.distance * c.distance / 2 >= match_threshold
    ORDER BY c.distance, c.document_id, c.id;
END
$$;

CREATE OR REPLACE FUNCTION {schema}.match_documents_ip(
    query_embedding vector, match_threshold double precision, match_count integer)
RETURNS TABLE (id bigint, content text, similarity double precision, source text, heading text)
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN QUERY
    SELECT c.id, c.content, -c.distance AS similarity, d.source, c.heading
    FROM (
        SELECT ch.document_id, ch.id, ch.content, ch.heading, ch.embedding <#> query_embedding AS distance
        FROM {schema}.chunks ch
        ORDER BY ch.embedding <#> query_embedding
        LIMIT match_count
    ) c
    JOIN {schema}.documents d ON d.id = c.document_id
    WHERE -c.distance >= match_threshold
    ORDER BY c.distance, c.document_id, c.id;
END
$$;
