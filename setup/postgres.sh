#!/usr/bin/env bash
# Provide the PostgreSQL database the embedded Hatchet engine keeps its state
# in. The official sidecar can bundle its own Postgres, but that one is
# downloaded at run time; here Debian's PostgreSQL is installed instead and
# its URL is handed to the engine through HATCHET_CLIENT_EMBEDDED_DATABASE_URL.
# Skipped when an external engine is configured (HATCHET_CLIENT_TOKEN).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if [ -n "${HATCHET_CLIENT_TOKEN:-}" ]; then
  log "postgres: external Hatchet engine configured, skipping"
  exit 0
fi

apt_install postgresql

version=$(pg_lsclusters -h | awk 'NR==1 {print $1}')
if [ -z "$version" ]; then
  version=$(ls /usr/lib/postgresql | sort -V | tail -1)
  pg_createcluster "$version" main >/dev/null
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main"' | grep -q online; then
  log "postgres: starting cluster $version/main"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi
wait_for 30 runuser -u postgres -- psql -Atc 'select 1' || die "postgres did not answer"

# The engine opens three database layers with several pools each.
if [ "$(runuser -u postgres -- psql -Atc 'show max_connections')" -lt 200 ]; then
  runuser -u postgres -- psql -qc 'ALTER SYSTEM SET max_connections = 200'
  pg_ctlcluster --skip-systemctl-redirect "$version" main restart
  wait_for 30 runuser -u postgres -- psql -Atc 'select 1' || die "postgres did not come back"
fi

# Idempotent: the role and database are created once and kept, so the engine
# (and every run it holds) survives worker and engine restarts.
runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 <<'SQL'
DO $$BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hatchet') THEN
    CREATE ROLE hatchet LOGIN PASSWORD 'hatchet';
  END IF;
END$$;
SELECT 'CREATE DATABASE hatchet OWNER hatchet'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'hatchet') \gexec
ALTER DATABASE hatchet SET timezone TO 'UTC';
SQL
log "postgres: database hatchet ready on 127.0.0.1:5432"
