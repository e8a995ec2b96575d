#!/bin/sh
# Run once by the postgres image on an empty data directory (/docker-entrypoint-initdb.d): the roles and
# databases of the Dagster instance, the dbt warehouse and MLflow's backend store. The passwords come from
# the container's environment (docker-compose.yaml), handed to psql as variables, never written here.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v dagster_password="$DAGSTER_PG_PASSWORD" \
    -v mlops_password="$DBT_PG_PASSWORD" \
    -v mlflow_password="$MLFLOW_DB_PASSWORD" <<'SQL'
CREATE ROLE dagster LOGIN PASSWORD :'dagster_password';
CREATE DATABASE dagster OWNER dagster;
CREATE ROLE mlops LOGIN PASSWORD :'mlops_password';
CREATE DATABASE mlops OWNER mlops;
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;
SQL
