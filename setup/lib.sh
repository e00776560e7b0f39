# Shared helpers for the set-up scripts. Sourced, never run.
# shellcheck shell=bash

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# Where built artefacts (engine binaries, the Debian base rootfs) are cached
# between runs and between clones on the same machine.
: "${SUPPORT_AGENT_CACHE_DIR:=$HOME/.cache/support-agent}"
# Where running services keep their logs, pid files and connection files.
: "${SUPPORT_AGENT_STATE_DIR:=$HOME/.local/state/support-agent}"
mkdir -p "$SUPPORT_AGENT_CACHE_DIR"
# The state holds secrets (the database URL, the engine's token, the dashboard
# login) and customers' evidence: its user's alone, also when it exists
# already (mkdir -m applies to a directory it creates only).
mkdir -p "$SUPPORT_AGENT_STATE_DIR"
chmod 700 "$SUPPORT_AGENT_STATE_DIR" || die "cannot make $SUPPORT_AGENT_STATE_DIR owner-only (chmod 700)"

# Debian packages are installed only when missing; `apt-get update` runs once
# per script invocation, and only if something has to be installed.
_apt_updated=0
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "needs root to install: ${missing[*]} (install them, then re-run)"
  if [ "$_apt_updated" -eq 0 ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    _apt_updated=1
  fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Poll a command until it succeeds or the deadline passes.
wait_for() {
  local seconds=$1; shift
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
}

# The engine version pinned in setup/hatchet/go.mod.
hatchet_version() {
  grep -oE 'github.com/hatchet-dev/hatchet v[0-9]+\.[0-9]+\.[0-9]+' "$(dirname "${BASH_SOURCE[0]}")/hatchet/go.mod" |
    head -1 | cut -d' ' -f2
}

# The engine's database URL with PostgreSQL's plan_cache_mode for its sessions
# (a startup parameter: the engine's driver sends unknown URL parameters as
# such). "auto" (PostgreSQL's default) leaves the URL as it is.
engine_database_url() {
  local url=$1 mode=$2
  case "$mode" in
    auto) printf '%s\n' "$url"; return ;;
    force_generic_plan | force_custom_plan) ;;
    *) die "HATCHET_ENGINE_PLAN_CACHE_MODE must be auto, force_generic_plan or force_custom_plan, not '$mode'" ;;
  esac
  case "$url" in
    *plan_cache_mode=*) die "the database URL sets plan_cache_mode: set HATCHET_ENGINE_PLAN_CACHE_MODE instead" ;;
    postgres://*\?* | postgresql://*\?*) printf '%s&plan_cache_mode=%s\n' "$url" "$mode" ;;
    postgres://* | postgresql://*) printf '%s?plan_cache_mode=%s\n' "$url" "$mode" ;;
    *) printf '%s plan_cache_mode=%s\n' "$url" "$mode" ;; # key=value form
  esac
}
