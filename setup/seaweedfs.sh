#!/usr/bin/env bash
# Build SeaweedFS's `weed` (a real S3-compatible server) for the evidence
# store's integration tests, with the machine's Go through its configured
# module proxy, at the version pinned in setup/seaweedfs/go.mod and verified
# against setup/seaweedfs/go.sum. Built once per version (several minutes on
# two cores), then cached; the tests start it on loopback ports of their own.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

version=$(awk '$1 == "github.com/seaweedfs/seaweedfs" { print $2 }' "$here/seaweedfs/go.mod")
[ -n "$version" ] || die "no pinned seaweedfs version in setup/seaweedfs/go.mod"
bin=${SEAWEEDFS_BIN_DIR:-$SUPPORT_AGENT_CACHE_DIR/seaweedfs-$version/bin}

if [ -x "$bin/weed" ]; then
  log "seaweedfs: weed $version already built in $bin"
  exit 0
fi
command -v go >/dev/null || die "Go is needed to build SeaweedFS for the S3 tests (Go >= 1.26)"
log "seaweedfs: building weed $version into $bin (first run only, several minutes)"
mkdir -p "$bin"
cd "$here/seaweedfs"
t0=$SECONDS
CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -ldflags "-s -w" \
  -o "$bin/" github.com/seaweedfs/seaweedfs/weed
log "seaweedfs: built in $((SECONDS - t0)) s"
