-- Stop watching a table: its triggers go (its queued changes are deleted by pgask). When no
-- table is watched any more, table_changes_drop.sql removes the queue and the trigger function.

DROP TRIGGER IF EXISTS {on_insert} ON {table};
DROP TRIGGER IF EXISTS {on_update} ON {table};
DROP TRIGGER IF EXISTS {on_delete} ON {table};
DROP TRIGGER IF EXISTS {on_truncate} ON {table};
