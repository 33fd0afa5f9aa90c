-- Approximate-nearest-neighbour index on chunk vectors (IVFFlat); lists chosen from the row count.
CREATE INDEX {index} ON {schema}.chunks USING ivfflat (embedding {opclass}) WITH (lists = {lists});
