-- One login per kind of work, so the internet-facing report route cannot change what it reports on:
-- tbs_reports_writer for the consumer (rows in, rows rewritten), tbs_reports_reader for the report
-- route (SELECT only, and read-only transactions by default as a second lock). Only the migrator keeps
-- the master login. Passwords are not here: the migrator sets each from its own Secrets Manager secret.
-- Roles belong to the whole cluster, so another database of it may have created them already.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tbs_reports_writer') THEN
        CREATE ROLE tbs_reports_writer LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tbs_reports_reader') THEN
        CREATE ROLE tbs_reports_reader LOGIN;
    END IF;
END
$$;

ALTER ROLE tbs_reports_reader SET default_transaction_read_only = on;

DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO tbs_reports_writer, tbs_reports_reader', current_database());
END
$$;

GRANT USAGE ON SCHEMA public TO tbs_reports_writer, tbs_reports_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON orders, order_items, order_confirmations TO tbs_reports_writer;
GRANT SELECT ON orders, order_items, order_confirmations TO tbs_reports_reader;

-- Tables later migrations create (as the master login) get the same grants.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO tbs_reports_writer;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO tbs_reports_reader;
