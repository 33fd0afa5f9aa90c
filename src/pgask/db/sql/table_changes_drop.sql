-- The change queue and its trigger function, once no table is watched any more.

DROP TABLE IF EXISTS {schema}.table_changes;
DROP FUNCTION IF EXISTS {schema}.record_table_change();
