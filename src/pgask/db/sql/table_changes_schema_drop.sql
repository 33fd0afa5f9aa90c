-- The schema that held the change queue in a source database other than the knowledge base's,
-- once it is empty (RESTRICT: anything else in it keeps it).

DROP SCHEMA IF EXISTS {schema} RESTRICT;
