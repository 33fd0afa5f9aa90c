-- Citus: documents and chunks are hash-distributed by document id into the same colocation group,
-- so a document and its chunks live in the same shard and every per-document write is routed to
-- one worker; settings and usage are small reference tables, copied to every node.
-- Each call is skipped when the table is already in Citus metadata, so the script can run again.
-- Sequential mode for the rest of the transaction: the functions created after this are propagated
-- to the workers, which Citus refuses after parallel shard creation in the same transaction.

SET LOCAL citus.multi_shard_modify_mode TO 'sequential';

SELECT create_reference_table(format('%I.settings', {schema_name})::regclass)
WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = format('%I.settings', {schema_name})::regclass);

SELECT create_reference_table(format('%I.usage', {schema_name})::regclass)
WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = format('%I.usage', {schema_name})::regclass);

SELECT create_distributed_table(format('%I.documents', {schema_name})::regclass, 'id')
WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = format('%I.documents', {schema_name})::regclass);

SELECT create_distributed_table(format('%I.chunks', {schema_name})::regclass, 'document_id',
                                colocate_with => format('%I.documents', {schema_name}))
WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = format('%I.chunks', {schema_name})::regclass);
