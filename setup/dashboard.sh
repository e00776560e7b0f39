#!/usr/bin/env bash
# Build the Hatchet dashboard (frontend/app of the engine module pinned in
# setup/hatchet/go.mod) into $SUPPORT_AGENT_CACHE_DIR/dashboard-<version>, which
# setup/hatchet-sidecar hands to the engine to serve.
#
# The source is the same module version the engine binaries are built from
# (read-only in the Go module cache), copied to a scratch tree and built with
# pnpm (at the version package.json names, installed into a private prefix
# under the cache dir) on the machine's Node. Changes made to the copy, so the
# pages need nothing from the internet and the install works with the
# registries reachable here:
#   - better-emitter is pinned to 3.0.0 (the registry here has no 4.0.1; 4.x
#     only converted it to ESM, same behaviour);
#   - Cypress's binary download is switched off (CYPRESS_INSTALL_BINARY=0);
#   - src/lib/generated/docs is produced with upstream's generate.py;
#   - the Google Fonts link is removed from index.html (local fonts are used);
#   - the Monaco editor is bundled instead of loaded from a CDN
#     (setup/dashboard/monaco-local.ts);
#   - no source maps.
#
# Rebuilt only when the version or this recipe (this script and
# setup/dashboard/*) changes. A failing step says which step failed and leaves
# the installed build alone; the engine serves its API with or without one.
# Skipped when an external engine (HATCHET_CLIENT_TOKEN) or another sidecar
# binary is configured.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

if [ -n "${HATCHET_CLIENT_TOKEN:-}" ]; then
  log "dashboard: external engine configured, nothing to build"
  exit 0
fi
if [ -n "${HATCHET_CLIENT_EMBEDDED_BINARY_PATH:-}" ] && [ "$HATCHET_CLIENT_EMBEDDED_BINARY_PATH" != "$here/hatchet-sidecar" ]; then
  log "dashboard: another sidecar is configured, nothing to build"
  exit 0
fi

version=$(hatchet_version)
[ -n "$version" ] || die "no pinned hatchet version in setup/hatchet/go.mod"
recipe=$(cat "$here/dashboard.sh" "$here"/dashboard/* | sha256sum | cut -c1-12)
link="$SUPPORT_AGENT_CACHE_DIR/dashboard-$version"
stamp_name=.support-agent-build.json

if [ -f "$link/index.html" ] && grep -q "\"recipe\": *\"$recipe\"" "$link/$stamp_name" 2>/dev/null; then
  log "dashboard: $version already built in $link"
  exit 0
fi

# Node (>= 18.12 for pnpm 10) and npm: the machine's, else Debian's.
command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
for tool in node npm python3 go; do
  command -v "$tool" >/dev/null || die "dashboard: $tool is needed to build the dashboard"
done

scratch="$SUPPORT_AGENT_CACHE_DIR/dashboard-build"
build_log="$SUPPORT_AGENT_CACHE_DIR/dashboard-build.log"
: >"$build_log"
current_step=""
# Run one build step with its output in the build log. set -e stops the script
# at the first failing command; the exit trap then says which step failed and
# shows the end of its output. Nothing is installed before the last step, so
# the installed build stays as it was.
on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ -n "$current_step" ]; then
    tail -n 25 "$build_log" | sed 's/^/  | /' >&2
    printf '[setup] error: dashboard: step "%s" failed (full log: %s); the installed build, if any, is left in place\n' \
      "$current_step" "$build_log" >&2
  fi
}
trap on_exit EXIT
step() {
  current_step=$1; shift
  printf '\n== %s\n' "$current_step" >>"$build_log"
  local t0=$SECONDS
  "$@" >>"$build_log" 2>&1
  log "dashboard: $current_step ($((SECONDS - t0)) s)"
  current_step=""
}

log "dashboard: building $version (recipe $recipe) in $scratch; first run takes a few minutes"
started=$SECONDS

locate_module() {
  # The module the engine is built from, verified against go.sum.
  module_dir=$(cd "$here/hatchet" && GOFLAGS="-mod=readonly" go mod download -json "github.com/hatchet-dev/hatchet" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  [ -f "$module_dir/frontend/app/package.json" ] || { echo "no frontend/app in $module_dir"; return 1; }
}
step "locate the engine module" locate_module

copy_sources() {
  rm -rf "$scratch"
  mkdir -p "$scratch/frontend/snippets" "$scratch/frontend/docs/content"
  cp -R "$module_dir/frontend/app" "$scratch/frontend/app"
  cp "$module_dir/frontend/snippets/generate.py" "$scratch/frontend/snippets/"
  cp -R "$module_dir/frontend/docs/content/docs" "$scratch/frontend/docs/content/docs"
  chmod -R u+w "$scratch"
  rm -rf "$scratch/frontend/app/node_modules" "$scratch/frontend/app/dist" "$scratch/frontend/app/src/lib/generated"
}
step "copy the frontend sources" copy_sources
app="$scratch/frontend/app"

install_pnpm() {
  local spec
  spec=$(node -p 'require(process.argv[1]).packageManager || ""' "$app/package.json")
  spec=${spec%%+*}
  case "$spec" in pnpm@[0-9]*) ;; *) echo "package.json names no pnpm version (packageManager: '$spec')"; return 1 ;; esac
  local prefix="$SUPPORT_AGENT_CACHE_DIR/tools/$spec"
  pnpm_bin="$prefix/node_modules/.bin/pnpm"
  if ! [ -x "$pnpm_bin" ]; then
    rm -rf "$prefix.tmp"
    npm install --prefix "$prefix.tmp" --no-audit --no-fund --loglevel=error "$spec"
    rm -rf "$prefix"
    mv "$prefix.tmp" "$prefix"
  fi
  echo "pnpm $("$pnpm_bin" --version) on node $(node --version)"
}
step "install pnpm" install_pnpm

patch_sources() {
  # package.json: the better-emitter the registry serves; monaco-editor as a
  # direct dependency (already in the lockfile as the editor's peer) so the
  # bundled loader can import it.
  node -e '
    const fs = require("fs"); const f = process.argv[1];
    const p = JSON.parse(fs.readFileSync(f, "utf8"));
    if (!p.dependencies || !p.dependencies["better-emitter"]) throw new Error("no better-emitter dependency");
    p.dependencies["better-emitter"] = "3.0.0";
    p.dependencies["monaco-editor"] = "0.55.1";
    fs.writeFileSync(f, JSON.stringify(p, null, 2) + "\n");
  ' "$app/package.json"
  # index.html: no Google Fonts stylesheet.
  python3 - "$app/index.html" <<'PY'
import re, sys
path = sys.argv[1]
html = open(path, encoding="utf-8").read()
new = re.sub(r'\s*<link[^>]*fonts\.googleapis\.com[^>]*>', '', html, flags=re.S)
new = re.sub(r'\s*<link[^>]*fonts\.gstatic\.com[^>]*>', '', new, flags=re.S)
if "fonts.googleapis" in new:
    sys.exit("index.html still links Google Fonts")
open(path, "w", encoding="utf-8").write(new)
PY
  # The editor: load Monaco from the bundle.
  local editor="$app/src/components/v1/ui/code-editor.tsx"
  [ -f "$editor" ] || { echo "missing $editor"; return 1; }
  cp "$here/dashboard/monaco-local.ts" "$app/src/components/v1/ui/monaco-local.ts"
  printf "import './monaco-local';\n" | cat - "$editor" >"$editor.new" && mv "$editor.new" "$editor"
}
step "patch the sources (better-emitter, fonts, Monaco)" patch_sources

pnpm_install() {
  cd "$app"
  CYPRESS_INSTALL_BINARY=0 "$pnpm_bin" install --no-frozen-lockfile --prefer-offline \
    --store-dir "$SUPPORT_AGENT_CACHE_DIR/pnpm-store" --reporter=append-only
}
step "pnpm install" pnpm_install

generate_docs() {
  # Upstream's generator writes frontend/app/src/lib/generated/docs from
  # frontend/docs relative to the repo root (two levels above snippets/).
  cd "$scratch/frontend/snippets"
  python3 -c 'import generate; generate.write_doc_index_to_app()'
  [ -s "$app/src/lib/generated/docs/index.ts" ]
}
step "generate src/lib/generated" generate_docs

export NODE_OPTIONS="--max-old-space-size=${DASHBOARD_NODE_MEMORY_MB:-4096}"
typecheck() { cd "$app" && "$pnpm_bin" exec tsc -p tsconfig.build.json; }
step "type-check (tsc)" typecheck

vite_build() { cd "$app" && "$pnpm_bin" exec vite build --sourcemap false; }
step "bundle (vite build)" vite_build

check_dist() {
  local dist="$app/dist"
  find "$dist" -name '*.map' -delete
  [ -f "$dist/index.html" ] || { echo "no index.html in dist"; return 1; }
  # The engine renders index.html as a Go template with {{ .BasePath }}.
  grep -q '{{ .BasePath }}' "$dist/index.html" || { echo "index.html lacks the {{ .BasePath }} template action"; return 1; }
  if grep -q 'fonts.googleapis' "$dist/index.html"; then echo "index.html still links Google Fonts"; return 1; fi
  if grep -rlq 'sourceMappingURL=' "$dist/assets" 2>/dev/null; then
    find "$dist/assets" -name '*.js' -exec sed -i '/^\/\/# sourceMappingURL=/d' {} +
  fi
  echo "dist: $(du -sh "$dist" | cut -f1) in $(find "$dist" -type f | wc -l) files"
}
step "check the bundle" check_dist

install_dist() {
  local target="$link.$recipe.$(date +%s)"
  local seconds=$((SECONDS - started))
  printf '{"version": "%s", "recipe": "%s", "built_at": "%s", "build_seconds": %d, "node": "%s"}\n' \
    "$version" "$recipe" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$seconds" "$(node --version)" >"$app/dist/$stamp_name"
  rm -rf "$target"
  mv "$app/dist" "$target"
  # Swap the link in one rename, so a running engine never sees a half build.
  local previous=""
  if [ -L "$link" ]; then previous=$(readlink "$link"); elif [ -e "$link" ]; then rm -rf "$link"; fi
  ln -sfn "$(basename "$target")" "$link.new"
  mv -T "$link.new" "$link"
  # Builds of this version older than the one just replaced go (that one stays
  # until the next build), except one a running engine still serves: the
  # engine holds a shared lock on its stamp for its life (support-engine's
  # dashboard.go), so an exclusive one is not to be had while it runs.
  local old name
  for old in "$link".*; do
    [ -d "$old" ] && ! [ -L "$old" ] || continue
    name=$(basename "$old")
    if [ "$name" = "$(basename "$target")" ] || [ "$name" = "$previous" ]; then continue; fi
    if [ -f "$old/$stamp_name" ] && ! flock -n -x "$old/$stamp_name" true; then
      echo "keeping $name: a running engine serves it"
      continue
    fi
    rm -rf "$old"
  done
}
step "install into $link" install_dist
# node_modules (~700 MB) and pnpm's store are only needed again for the next
# engine version, which downloads them again in about 20 s.
rm -rf "$scratch" "$SUPPORT_AGENT_CACHE_DIR/pnpm-store"
log "dashboard: built $version in $((SECONDS - started)) s: $link ($(du -sh "$link/" | cut -f1))"
