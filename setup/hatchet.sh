#!/usr/bin/env bash
# Build the Hatchet engine binaries (support-engine, hatchet-migrate,
# hatchet-admin) with the machine's Go, through its configured module proxy,
# at the version pinned in setup/hatchet/go.mod and verified against
# setup/hatchet/go.sum. Rebuilt only when the pinned version changes (or a
# binary is missing).
#
# support-engine (setup/hatchet/cmd/support-engine) is ours: it runs what
# upstream's hatchet-lite runs (engine, REST API, dashboard) from the same
# module, but binds every listener to one address (127.0.0.1 by default)
# where hatchet-lite listens on every interface.
#
# Why not the official embedded sidecar: `go install
# github.com/hatchet-dev/hatchet-embedded/cmd/sidecar@<tag>` is refused by the
# module proxy these machines use, so setup/hatchet-sidecar speaks the
# sidecar's command-line contract on top of support-engine instead. If you have
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

if [ -x "$bin/support-engine" ] && [ -x "$bin/hatchet-migrate" ] && [ -x "$bin/hatchet-admin" ]; then
  log "hatchet: engine $version already built in $bin"
  exit 0
fi
command -v go >/dev/null || die "Go is needed to build the Hatchet engine (Go >= 1.26)"

log "hatchet: building engine $version into $bin (first run only, several minutes)"
mkdir -p "$bin"
cd "$here/hatchet"
# support-engine reaches one unexported function of the engine module by its
# linker name (see cmd/support-engine/apihandler.go), which the compiler cannot
# type-check: check its declaration in this version's source first.
module_dir=$(GOFLAGS="-mod=readonly" go list -m -f '{{.Dir}}' github.com/hatchet-dev/hatchet 2>/dev/null || true)
if [ -z "$module_dir" ] || ! [ -d "$module_dir" ]; then
  GOFLAGS="-mod=readonly" go mod download github.com/hatchet-dev/hatchet
  module_dir=$(GOFLAGS="-mod=readonly" go list -m -f '{{.Dir}}' github.com/hatchet-dev/hatchet)
fi
grep -q '^func (t \*APIServer) getCoreEchoService() (\*echo.Echo, error) {$' "$module_dir/api/v1/server/run/run.go" ||
  die "hatchet $version changed APIServer.getCoreEchoService (api/v1/server/run/run.go): update setup/hatchet/cmd/support-engine/apihandler.go"
t0=$SECONDS
# The version is stamped in so the SDK sees the real engine version and takes
# the modern durable-task code paths.
CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath \
  -ldflags "-s -w -X main.Version=$version" -o "$bin/" \
  ./cmd/support-engine \
  github.com/hatchet-dev/hatchet/cmd/hatchet-migrate \
  github.com/hatchet-dev/hatchet/cmd/hatchet-admin
log "hatchet: built $("$bin/support-engine" --version 2>/dev/null | head -1 || echo "$version") in $((SECONDS - t0)) s"
