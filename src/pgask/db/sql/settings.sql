-- What this knowledge base was built with. pgask refuses to mix embeddings of another model.
INSERT INTO {schema}.settings (key, value) VALUES
    ('embedding', {embedding}),
    ('schema_version', {schema_version}),
    ('text_search_config', {text_search_config})
ON CONFLICT (key) DO NOTHING;
