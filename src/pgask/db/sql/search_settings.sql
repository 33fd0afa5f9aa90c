-- The transaction-local settings of one search, in the search's own round trip before the search
-- (set_search_settings in search.sql says which and why).
SELECT {schema}.set_search_settings(%(depth)s, %(ef_search)s, %(default_ef_search)s, %(probes)s,
                                    %(default_probes)s, %(exact)s, %(metric)s, %(filtered)s)
