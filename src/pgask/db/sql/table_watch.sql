-- Change capture for a watched table (`pgask ingest --table ... --watch`), created in the
-- database that holds the table. Statement-level triggers append the ids of inserted, updated
-- and deleted rows to a queue that `pgask sync` drains; a TRUNCATE queues a NULL id, which
-- means "re-read the whole table". Placeholders are filled with psycopg.sql.

CREATE SCHEMA IF NOT EXISTS {schema};

CREATE TABLE IF NOT EXISTS {schema}.table_changes (
    seq        bigserial PRIMARY KEY,
    relid      oid NOT NULL,                   -- the watched table
    row_id     text,                           -- the row's id as jsonb text; NULL after TRUNCATE
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS table_changes_relid_idx ON {schema}.table_changes (relid, seq);

-- SECURITY DEFINER: whoever writes to the table records its changes without rights on the queue.
CREATE OR REPLACE FUNCTION {schema}.record_table_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $function$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO {schema}.table_changes (relid, row_id) VALUES (TG_RELID, NULL);
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO {schema}.table_changes (relid, row_id)
        SELECT DISTINCT TG_RELID, id FROM (SELECT to_jsonb(n) ->> TG_ARGV[0] FROM new_rows n) AS r (id)
        WHERE id IS NOT NULL;
    ELSIF TG_OP = 'UPDATE' THEN  -- the old id too: an update may change a row's id
        INSERT INTO {schema}.table_changes (relid, row_id)
        SELECT TG_RELID, id FROM (SELECT to_jsonb(n) ->> TG_ARGV[0] FROM new_rows n
                                  UNION SELECT to_jsonb(o) ->> TG_ARGV[0] FROM old_rows o) AS r (id)
        WHERE id IS NOT NULL;
    ELSE
        INSERT INTO {schema}.table_changes (relid, row_id)
        SELECT DISTINCT TG_RELID, id FROM (SELECT to_jsonb(o) ->> TG_ARGV[0] FROM old_rows o) AS r (id)
        WHERE id IS NOT NULL;
    END IF;
    RETURN NULL;
END
$function$;

DROP TRIGGER IF EXISTS {on_insert} ON {table};
DROP TRIGGER IF EXISTS {on_update} ON {table};
DROP TRIGGER IF EXISTS {on_delete} ON {table};
DROP TRIGGER IF EXISTS {on_truncate} ON {table};
CREATE TRIGGER {on_insert} AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.record_table_change({id_column});
CREATE TRIGGER {on_update} AFTER UPDATE ON {table} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.record_table_change({id_column});
CREATE TRIGGER {on_delete} AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.record_table_change({id_column});
CREATE TRIGGER {on_truncate} AFTER TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.record_table_change({id_column});
