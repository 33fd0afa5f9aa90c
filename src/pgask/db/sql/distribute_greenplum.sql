-- Greenplum 7 and Cloudberry: documents and chunks hashed by document id, so a document and its
-- chunks live on the same segment; settings is replicated to every segment, the usage ledger is
-- spread round-robin. Every unique key already includes the distribution key, as these engines
-- require. The tables are empty when this runs after schema.sql; on a later run the policy is
-- unchanged and Greenplum moves no data (only REORGANIZE=true would).

ALTER TABLE {schema}.settings SET DISTRIBUTED REPLICATED;

ALTER TABLE {schema}.usage SET DISTRIBUTED RANDOMLY;

ALTER TABLE {schema}.documents SET DISTRIBUTED BY (id);

ALTER TABLE {schema}.chunks SET DISTRIBUTED BY (document_id);
