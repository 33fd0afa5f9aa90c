-- Query vectors of a remote embedding model, found by a hash of the query text (the text itself
-- is not kept): the same question asked again, by any process, costs no second API call.
-- No index is built on the vectors, so the column takes any dimension.

CREATE TABLE IF NOT EXISTS {schema}.query_cache (
    model     text NOT NULL,
    text_hash text NOT NULL,                  -- sha256 of the query text
    embedding vector NOT NULL,
    at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, text_hash)
);
