#!/usr/bin/env bash
# Airflow's metadata database beside the Pulse warehouse, owned by its own login (not the superuser).
# Runs once, when the postgres volume is first initialised.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v password="$AIRFLOW_DB_PASSWORD" <<'SQL'
create role airflow login password :'password';
create database airflow owner airflow;
SQL
