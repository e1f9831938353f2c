#!/bin/sh
# Runs once, as the PostgreSQL superuser, when the data volume is empty
# (docker-entrypoint-initdb.d; see docs/deploy/compose.production.yml). The same SQL, run
# with psql, sets up a PostgreSQL of your own: see docs/operations.md.
set -eu
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v owner_password="$GATEHOUSE_OWNER_PASSWORD" -v app_password="$GATEHOUSE_APP_PASSWORD" <<'SQL'
CREATE ROLE gatehouse_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE gatehouse_app LOGIN PASSWORD :'app_password';
CREATE DATABASE gatehouse OWNER gatehouse_owner;
REVOKE ALL ON DATABASE gatehouse FROM PUBLIC;
GRANT CONNECT ON DATABASE gatehouse TO gatehouse_app;
\connect gatehouse
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO gatehouse_app;
ALTER DEFAULT PRIVILEGES FOR ROLE gatehouse_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO gatehouse_app;
ALTER DEFAULT PRIVILEGES FOR ROLE gatehouse_owner IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO gatehouse_app;
SQL
