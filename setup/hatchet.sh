#!/usr/bin/env bash
# Build the Hatchet engine binaries (support-engine, hatchet-migrate,
# hatchet-admin) with the machine's Go, through its configured module proxy,
# at the version pinned in setup/hatchet/go.mod and verified against
# setup/hatchet/go.sum, with our patches to the engine applied
# (setup/hatchet/patches/*.patch, see below).
#
# support-engine (setup/hatchet/cmd/support-engine) is ours: it runs what
# upstream's hatchet-lite runs (engine, REST API, dashboard) from the same
# module, but binds every listener to one address (127.0.0.1 by default)
# where hatchet-lite listens on every interface.
#
# Patches. Every setup/hatchet/patches/*.patch is applied, in name order
# (patch -p1, no fuzz), to a copy of the pinned module under
# $SUPPORT_AGENT_CACHE_DIR/hatchet-<version>/; the build then uses that copy
# through a copy of go.mod with a `replace` pointing at it (and a copy of
# go.sum: -mod=readonly, so every other module is still verified). A patch
# that does not apply stops set-up, naming the patch. The bin directory holds
# a stamp of what it was built from (version, patches, our sources): any
# change rebuilds. Binaries are built next to the bin directory and renamed
# into it, so a running engine is never overwritten half-way.
#
# Why not the official embedded sidecar: `go install
# github.com/hatchet-dev/hatchet-embedded/cmd/sidecar@<tag>` is refused by the
# module proxy these machines use, so setup/hatchet-sidecar speaks the
# sidecar's command-line contract on top of support-engine instead. If you have
# the official binary, set HATCHET_CLIENT_EMBEDDED_BINARY_PATH to it and this
# step is skipped.
#
# HATCHET_BIN_DIR builds (and setup/hatchet-sidecar runs) another bin
# directory instead of $SUPPORT_AGENT_CACHE_DIR/hatchet-<version>/bin.
#
# `setup/hatchet.sh --test` runs our command's Go tests against the same
# (patched) module instead of building (`make test` does).
set -euo pipefail
mode=build
case "${1:-}" in
  "") ;;
  --test) mode=test ;;
  *) echo "usage: setup/hatchet.sh [--test]" >&2; exit 2 ;;
esac
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
mod="$here/hatchet"
shopt -s nullglob
patches=("$mod"/patches/*.patch)
shopt -u nullglob
patch_names=""
for p in "${patches[@]}"; do patch_names+="${patch_names:+ }$(basename "$p")"; done
# What the binaries are built from, besides the module itself (checksummed in
# go.sum): the patches, our command's sources, the pins and this recipe.
patch_hash=$(cat /dev/null "${patches[@]}" | sha256sum | cut -c1-12)
recipe=$(cat "$here/hatchet.sh" "${patches[@]}" "$mod"/cmd/support-engine/* "$mod/go.mod" "$mod/go.sum" |
  sha256sum | cut -c1-12)
stamp="$bin/.support-agent-build.json"

built() {
  [ -x "$bin/support-engine" ] && [ -x "$bin/hatchet-migrate" ] && [ -x "$bin/hatchet-admin" ] &&
    grep -q "\"recipe\": \"$recipe\"" "$stamp" 2>/dev/null
}
if [ "$mode" = build ] && built; then
  log "hatchet: engine $version (patches: ${patch_names:-none}) already built in $bin"
  exit 0
fi
command -v go >/dev/null || die "Go is needed to build the Hatchet engine (Go >= 1.26)"
[ ${#patches[@]} -eq 0 ] || command -v patch >/dev/null || apt_install patch

# One build at a time per machine and version (set-ups run concurrently from
# several checkouts share the cache); the second one finds the first's build.
work_root="$SUPPORT_AGENT_CACHE_DIR/hatchet-$version"
mkdir -p "$work_root"
exec 9>"$work_root/.build.lock"
flock 9
if [ "$mode" = build ] && built; then
  log "hatchet: engine $version (patches: ${patch_names:-none}) built meanwhile in $bin"
  exit 0
fi

current_step=""
on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ -n "$current_step" ]; then
    printf '[setup] error: hatchet: step "%s" failed; the installed binaries, if any, are left in place\n' \
      "$current_step" >&2
  fi
}
trap on_exit EXIT

[ "$mode" = test ] || log "hatchet: building engine $version (patches: ${patch_names:-none}) into $bin (several minutes)"
t0=$SECONDS

current_step="locate the engine module"
cd "$mod"
# `go mod download` verifies the module against go.sum.
module_dir=$(GOFLAGS="-mod=readonly" go mod download -json "github.com/hatchet-dev/hatchet@$version" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
[ -f "$module_dir/go.mod" ] || die "hatchet: no module source in '$module_dir'"

modfile_flag=()
src=$module_dir
if [ ${#patches[@]} -gt 0 ]; then
  # The patched copy is kept (keyed by the patches) and reused by rebuilds
  # that change only our own sources; copies for other patch sets are removed.
  build_dir="$work_root/patched-$patch_hash"
  src="$build_dir/src"
  if ! [ -f "$build_dir/.applied" ]; then
    current_step="copy the engine module"
    for old in "$work_root"/patched-*; do [ "$old" = "$build_dir" ] || rm -rf "$old"; done
    rm -rf "$build_dir"
    mkdir -p "$build_dir"
    cp -R "$module_dir" "$src"
    chmod -R u+w "$src"
    for p in "${patches[@]}"; do
      current_step="apply patches/$(basename "$p")"
      if ! out=$(patch -d "$src" -p1 --forward --batch --fuzz=0 --no-backup-if-mismatch <"$p" 2>&1); then
        printf '%s\n' "$out" | sed 's/^/  | /' >&2
        current_step=""
        die "hatchet: patches/$(basename "$p") does not apply to hatchet $version (step: apply patches); update or remove it"
      fi
      log "hatchet: applied patches/$(basename "$p")"
    done
    touch "$build_dir/.applied"
  fi
  current_step="prepare the build's go.mod"
  # The module's go.mod and go.sum with one addition: the replace. go.sum
  # keeps verifying every other module (-mod=readonly fails on any gap).
  cp "$mod/go.mod" "$build_dir/go.mod"
  cp "$mod/go.sum" "$build_dir/go.sum"
  printf '\nreplace github.com/hatchet-dev/hatchet %s => %s\n' "$version" "$src" >>"$build_dir/go.mod"
  modfile_flag=(-modfile "$build_dir/go.mod")
fi

current_step="check the linked declaration"
# support-engine reaches one unexported function of the engine module by its
# linker name (see cmd/support-engine/apihandler.go), which the compiler cannot
# type-check: check its declaration in the source being built first.
grep -q '^func (t \*APIServer) getCoreEchoService() (\*echo.Echo, error) {$' "$src/api/v1/server/run/run.go" ||
  die "hatchet $version changed APIServer.getCoreEchoService (api/v1/server/run/run.go): update setup/hatchet/cmd/support-engine/apihandler.go"

if [ "$mode" = test ]; then
  current_step="go test"
  # The sole-instance lock test needs a database (it locks a random key only):
  # set-up's own, unless one is given.
  if [ -z "${SUPPORT_ENGINE_TEST_DATABASE_URL:-}" ] && [ -r "$SUPPORT_AGENT_STATE_DIR/database-url" ]; then
    SUPPORT_ENGINE_TEST_DATABASE_URL=$(cat "$SUPPORT_AGENT_STATE_DIR/database-url")
    export SUPPORT_ENGINE_TEST_DATABASE_URL
  fi
  CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" go test "${modfile_flag[@]}" -count=1 ./cmd/support-engine/
  current_step=""
  exit 0
fi

current_step="go build"
staging="$bin.new.$$"
rm -rf "$staging"
mkdir -p "$staging"
# The version is stamped in so the SDK sees the real engine version and takes
# the modern durable-task code paths.
CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" go build "${modfile_flag[@]}" -trimpath \
  -ldflags "-s -w -X main.Version=$version -X 'main.Patches=$patch_names'" -o "$staging/" \
  ./cmd/support-engine \
  github.com/hatchet-dev/hatchet/cmd/hatchet-migrate \
  github.com/hatchet-dev/hatchet/cmd/hatchet-admin

current_step="install the binaries"
printf '{"version": "%s", "patches": "%s", "patch_hash": "%s", "recipe": "%s", "built_at": "%s", "go": "%s"}\n' \
  "$version" "$patch_names" "$patch_hash" "$recipe" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(go env GOVERSION)" \
  >"$staging/.support-agent-build.json"
mkdir -p "$bin"
rm -f "$stamp"
for f in support-engine hatchet-migrate hatchet-admin; do mv -f "$staging/$f" "$bin/$f"; done
mv -f "$staging/.support-agent-build.json" "$stamp"
rmdir "$staging"
current_step=""
log "hatchet: built $("$bin/support-engine" --version 2>/dev/null | paste -sd' ' || echo "$version") in $((SECONDS - t0)) s"
