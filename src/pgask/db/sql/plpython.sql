-- PL/Python functions: embeddings and cited answers computed inside the database server by the
-- pgask package installed on the database host (see pgask/in_database.py). They are installed
-- only where the server offers plpython3u and the installing role may use it (an untrusted
-- language: superusers only); otherwise a NOTICE says why and the rest of the SQL API stands.
-- get_embeddings returns pgvector's type and is created only where pgvector is installed;
-- get_embeddings_array returns real[] and needs nothing but plpython3u.

DO $install$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'plpython3u') THEN
        RAISE NOTICE 'pgask: plpython3u is not available on this server: pgask.get_embeddings, '
                     'pgask.get_embeddings_array and pgask.ask are not installed (install the server''s '
                     'PL/Python package, e.g. postgresql-plpython3-NN, and run pgask sql --install again)';
        RETURN;
    END IF;
    CREATE EXTENSION IF NOT EXISTS plpython3u;

    CREATE OR REPLACE FUNCTION {schema}.get_embeddings_array(input text) RETURNS real[]
    LANGUAGE plpython3u STABLE STRICT AS $py$
from pgask.in_database import embedding
return embedding(plpy, GD, {schema_name}, input)
$py$;

    IF to_regtype('vector') IS NOT NULL THEN
        CREATE OR REPLACE FUNCTION {schema}.get_embeddings(input text) RETURNS vector
        LANGUAGE plpython3u STABLE STRICT AS $py$
from pgask.in_database import embedding, vector_literal
return vector_literal(embedding(plpy, GD, {schema_name}, input))
$py$;
    END IF;

    CREATE OR REPLACE FUNCTION {schema}.ask(question text)
    RETURNS TABLE (answer text, mode text, sources jsonb)
    LANGUAGE plpython3u STRICT AS $py$
from pgask.in_database import ask
return ask(plpy, GD, {schema_name}, question)
$py$;
EXCEPTION WHEN OTHERS THEN
    -- not a superuser (plpython3u is untrusted), or a node of a cluster without PL/Python
    RAISE NOTICE 'pgask: pgask.get_embeddings, pgask.get_embeddings_array and pgask.ask are not installed: % '
                 '(a superuser must run pgask sql --install, or apply pgask sql --print)', SQLERRM;
END
$install$;
