-- Approximate-nearest-neighbour index on chunk vectors (HNSW). Built after bulk loads.
CREATE INDEX {index} ON {schema}.chunks USING hnsw (embedding {opclass}) WITH (m = {m}, ef_construction = {ef_construction});
