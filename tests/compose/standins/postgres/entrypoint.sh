#!/bin/sh
# First start: a UTF-8 cluster (SQLAlchemy refuses SQL_ASCII) owned by POSTGRES_USER, with
# password auth from other hosts and POSTGRES_DB created. Then the server, as postgres.
set -e
bin=/usr/lib/postgresql/15/bin
user="${POSTGRES_USER:-postgres}"
mkdir -p "$PGDATA" /var/run/postgresql
chown -R postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
as_postgres() { runuser -u postgres -- "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  printf '%s\n' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}" > /tmp/pwfile
  chown postgres /tmp/pwfile
  as_postgres "$bin/initdb" -D "$PGDATA" -E UTF8 --locale=C.UTF-8 -U "$user" \
    --pwfile=/tmp/pwfile --auth-local=trust --auth-host=scram-sha-256
  rm -f /tmp/pwfile
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  if [ -n "$POSTGRES_DB" ] && [ "$POSTGRES_DB" != "postgres" ]; then
    as_postgres "$bin/postgres" --single -D "$PGDATA" postgres <<SQL
CREATE DATABASE "$POSTGRES_DB" OWNER "$user";
SQL
  fi
fi
if [ "$1" = "postgres" ]; then
  shift
  exec runuser -u postgres -- "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' "$@"
fi
exec "$@"
