-- SQL API usable from any client, without Python.

-- The original match_documents, ordered by the distance operator so an ANN index is used;
-- the threshold filters the nearest match_count rows afterwards.
CREATE OR REPLACE FUNCTION {schema}.match_documents(
    query_embedding vector, match_threshold double precision, match_count integer)
RETURNS TABLE (id bigint, content text, similarity double precision, source text, heading text)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT c.id, c.content, 1 - c.distance AS similarity, d.source, c.heading
    FROM (
        SELECT ch.document_id, ch.id, ch.content, ch.heading, ch.embedding <=> query_embedding AS distance
        FROM {schema}.chunks ch
        ORDER BY ch.embedding <=> query_embedding
        LIMIT match_count
    ) c
    JOIN {schema}.documents d ON d.id = c.document_id
    WHERE 1 - c.distance >= match_threshold
    ORDER BY c.distance
$$;
