#!/bin/sh
# Run once by the postgres image when the database is created (docker-entrypoint-initdb.d):
# the sensor logger's own role, which may read and add rows of numeric_data and nothing else.
# Name and password are read by psql itself from the Secret postgres-sensor-logger's files and
# quoted by psql (:"role", :'password'): nothing on a command line, no SQL injection.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
\set role `cat /run/secrets/postgres-sensor-logger/username`
\set password `cat /run/secrets/postgres-sensor-logger/password`
CREATE ROLE :"role" LOGIN PASSWORD :'password';
GRANT SELECT, INSERT ON numeric_data TO :"role";
SQL
