#!/usr/bin/env bash
# Provide the PostgreSQL database the embedded Hatchet engine keeps its state
# in. The official sidecar can bundle its own Postgres, but that one is
# downloaded at run time; here Debian's PostgreSQL is installed instead and
# its URL is handed to the engine through HATCHET_CLIENT_EMBEDDED_DATABASE_URL.
# The engine's role gets a password generated on the first set-up (never a
# well-known one: every local user reaches 127.0.0.1:5432, and the database
# holds every ticket); the URL with it is kept 0600 in
# $SUPPORT_AGENT_STATE_DIR/database-url, where the settings read it, and each
# set-up sets the role's password from it again (which also replaces the
# fixed password earlier versions used).
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
url_file=$SUPPORT_AGENT_STATE_DIR/database-url
url_pattern='^postgresql://hatchet:([A-Za-z0-9]{32})@127\.0\.0\.1:5432/hatchet\?sslmode=disable$'
role_exists=$(runuser -u postgres -- psql -Atc "SELECT 1 FROM pg_roles WHERE rolname = 'hatchet'")
# Whether the role logs in with this password (given in the environment, not on a command line).
logs_in() {
  PGPASSWORD=$1 PGCONNECT_TIMEOUT=5 psql -h 127.0.0.1 -p 5432 -U hatchet -d postgres -Atqc 'SELECT 1' \
    >/dev/null 2>&1
}
# The role is the machine's, the file a state directory's: a set-up with another
# SUPPORT_AGENT_STATE_DIR must not silently take the role from the first.
foreign="the database role hatchet has a password that $url_file does not hold (set by a set-up with another SUPPORT_AGENT_STATE_DIR?): copy that set-up's database-url file here"
set_password=0
if [ -s "$url_file" ]; then
  password=$(sed -nE "s|$url_pattern|\1|p" "$url_file")
  [ -n "$password" ] || die "$url_file is not the URL set-up writes: remove it to generate a new one"
  if [ -z "$role_exists" ]; then
    set_password=1
  elif ! logs_in "$password"; then
    logs_in hatchet || die "$foreign"
    set_password=1 # the fixed password of earlier versions: replace it
  fi
else
  [ -z "$role_exists" ] || logs_in hatchet || die "$foreign"
  # 32 characters from [A-Za-z0-9]: about 190 bits, and nothing to escape in a URL or SQL.
  password=$(tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32 || true)
  [ ${#password} -eq 32 ] || die "could not generate a database password"
  (umask 077 && printf 'postgresql://hatchet:%s@127.0.0.1:5432/hatchet?sslmode=disable\n' \
    "$password" >"$url_file.tmp") || die "could not write $url_file"
  mv "$url_file.tmp" "$url_file" || die "could not write $url_file"
  log "postgres: generated the engine's database password ($url_file)"
  set_password=1
fi
chmod 600 "$url_file"

# The server gets the password's SCRAM-SHA-256 verifier, never the password
# itself (which a statement log would keep); it goes to python3 through the
# environment and to psql on standard input, never on a command line.
alter_role=""
if [ "$set_password" -eq 1 ]; then
  verifier=$(SETUP_DB_PASSWORD=$password python3 - <<'PY'
import base64, hashlib, hmac, os
password = os.environ["SETUP_DB_PASSWORD"].encode()
salt, iterations = os.urandom(16), 4096
salted = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
b64 = lambda b: base64.b64encode(b).decode()
print(f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(hashlib.sha256(client_key).digest())}:{b64(server_key)}")
PY
  ) || die "could not compute the password's verifier"
  alter_role="ALTER ROLE hatchet WITH LOGIN PASSWORD '$verifier';"
fi
runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 <<SQL
DO \$\$BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hatchet') THEN
    CREATE ROLE hatchet LOGIN;
  END IF;
END\$\$;
$alter_role
SELECT 'CREATE DATABASE hatchet OWNER hatchet'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'hatchet') \\gexec
ALTER DATABASE hatchet SET timezone TO 'UTC';
SQL
log "postgres: database hatchet ready on 127.0.0.1:5432 (its URL: $url_file)"
