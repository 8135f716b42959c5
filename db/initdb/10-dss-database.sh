#!/usr/bin/env bash
# Runs once, on an empty data folder (postgres image entrypoint): creates the DSS database and
# the role that owns it. Tables come from the web server's migrations, not from here.
set -euo pipefail

: "${ITK_SNAP_SERVER_DATABASE_PASSWORD:?set ITK_SNAP_SERVER_DATABASE_PASSWORD (the web server uses the same value)}"

# psql variables (:"name" identifiers, :'name' literals) quote the values safely.
psql -v ON_ERROR_STOP=1 --no-psqlrc \
     --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
     -v db_name="${ITK_SNAP_SERVER_DATABASE_NAME:-admin_db}" \
     -v db_user="${ITK_SNAP_SERVER_DATABASE_USERNAME:-admin_user}" \
     -v db_password="${ITK_SNAP_SERVER_DATABASE_PASSWORD}" <<'SQL'
CREATE ROLE :"db_user" LOGIN PASSWORD :'db_password';
CREATE DATABASE :"db_name" OWNER :"db_user";
REVOKE ALL ON DATABASE :"db_name" FROM PUBLIC;
SQL
