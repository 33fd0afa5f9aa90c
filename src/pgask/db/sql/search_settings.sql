-- The transaction-local settings of one search, in the search's own round trip. ef_search and
-- probes: the caller's (PGASK_HNSW_EF_SEARCH / PGASK_IVFFLAT_PROBES), else those recorded with
-- the metric's index by `pgask index`, else the defaults; ef_search is at least the number of
-- rows the scan must return (depth) and at most pgvector's 1000.
SELECT set_config('hnsw.ef_search',
                  least(1000, greatest(%(depth)s, coalesce(%(ef_search)s, recorded.ef_search, %(default_ef_search)s)))::text,
                  true),
       set_config('ivfflat.probes', coalesce(%(probes)s, recorded.probes, %(default_probes)s)::text, true),
       set_config('enable_indexscan', %(indexscan)s, true)
FROM (SELECT max((spec->>'ef_search')::int) AS ef_search, max((spec->>'probes')::int) AS probes
      FROM {schema}.settings s CROSS JOIN LATERAL jsonb_array_elements(s.value) spec
      WHERE s.key = 'indexes' AND jsonb_typeof(s.value) = 'array' AND spec->>'metric' = %(metric)s) recorded
