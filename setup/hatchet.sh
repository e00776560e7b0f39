#!/usr/bin/env bash
# Build the Hatchet engine binaries (hatchet-lite, hatchet-migrate,
# hatchet-admin) with the machine's Go, through its configured module proxy,
# at the version pinned in setup/hatchet/go.mod and verified against
# setup/hatchet/go.sum. Rebuilt only when the pinned version changes.
#
# Why not the official embedded sidecar: `go install
# github.com/hatchet-dev/hatchet-embedded/cmd/sidecar@<tag>` is refused by the
# module proxy these machines use, so setup/hatchet-sidecar speaks the
# sidecar's command-line contract on top of hatchet-lite instead. If you have
# the official binary, set HATCHET_CLIENT_EMBEDDED_BINARY_PATH to it and this
# step is skipped.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

if [ -n "${HATCHET_CLIENT_TOKEN:-}" ]; then
  log "hatchet: external engine configured, nothing to build"
  exit 0
fi
if [ -n "${HATCHET_CLIENT_EMBEDDED_BINARY_PATH:-}" ] && [ "$HATCHET_CLIENT_EMBEDDED_BINARY_PATH" != "$here/hatchet-sidecar" ]; then
  [ -x "$HATCHET_CLIENT_EMBEDDED_BINARY_PATH" ] || die "HATCHET_CLIENT_EMBEDDED_BINARY_PATH=$HATCHET_CLIENT_EMBEDDED_BINARY_PATH is not executable"
  log "hatchet: using the sidecar at $HATCHET_CLIENT_EMBEDDED_BINARY_PATH"
  exit 0
fi

version=$(hatchet_version)
[ -n "$version" ] || die "no pinned hatchet version in setup/hatchet/go.mod"
bin=${HATCHET_BIN_DIR:-$SUPPORT_AGENT_CACHE_DIR/hatchet-$version/bin}

if [ -x "$bin/hatchet-lite" ] && [ -x "$bin/hatchet-migrate" ] && [ -x "$bin/hatchet-admin" ]; then
  log "hatchet: engine $version already built in $bin"
  exit 0
fi
command -v go >/dev/null || die "Go is needed to build the Hatchet engine (Go >= 1.26)"

log "hatchet: building engine $version into $bin (first run only, several minutes)"
mkdir -p "$bin"
cd "$here/hatchet"
# The version is stamped in so the SDK sees the real engine version and takes
# the modern durable-task code paths.
CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath \
  -ldflags "-s -w -X main.Version=$version" -o "$bin/" \
  github.com/hatchet-dev/hatchet/cmd/hatchet-lite \
  github.com/hatchet-dev/hatchet/cmd/hatchet-migrate \
  github.com/hatchet-dev/hatchet/cmd/hatchet-admin
log "hatchet: built $("$bin/hatchet-lite" --version 2>/dev/null | head -1 || echo "$version")"
