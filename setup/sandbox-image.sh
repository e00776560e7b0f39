#!/usr/bin/env bash
# Build the sandbox image from Dockerfile.sandbox, once per change of its
# inputs. The default base is a public slim Python image; when it cannot be
# pulled (no registry reachable), a Debian base is built from the machine's
# own apt sources with debootstrap and `docker import`, and used instead.
#
# Prints nothing on stdout but the image reference, so callers can capture it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/lib.sh"

image_repo=${SUPPORT_AGENT_SANDBOX_IMAGE_REPO:-support-agent-sandbox}
default_base=python:3.11-slim-bookworm
base=${SANDBOX_BASE_IMAGE:-}
packages="python3,python3-yaml,jq,gawk,file,xxd,procps,less,ca-certificates"

ensure_local_base() {
  . /etc/os-release
  local suite=${VERSION_CODENAME:?no codename in /etc/os-release}
  local tag="support-agent-base:$suite-$(printf '%s' "$packages" | sha256sum | cut -c1-12)"
  if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "$tag"; return
  fi
  apt_install debootstrap
  # The mirror is the one this machine's apt already uses for its own suite.
  local mirror
  mirror=$(apt-get indextargets --format '$(SITE) $(RELEASE)' 'Created-By: Packages' 2>/dev/null |
    awk -v s="$suite" '$2==s {print $1; exit}')
  [ -n "$mirror" ] || die "no apt source for $suite found to debootstrap from"
  local rootfs="$SUPPORT_AGENT_CACHE_DIR/rootfs-$suite.$$"
  log "sandbox: building a Debian $suite base with debootstrap (first run only)"
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" \
    >"$SUPPORT_AGENT_STATE_DIR/debootstrap.log" 2>&1 ||
    die "debootstrap failed; see $SUPPORT_AGENT_STATE_DIR/debootstrap.log"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
  rm -rf "$rootfs"
  echo "$tag"
}

if [ -z "$base" ]; then
  if docker image inspect "$default_base" >/dev/null 2>&1 || docker pull -q "$default_base" >/dev/null 2>&1; then
    base=$default_base
  else
    log "sandbox: cannot pull $default_base; using a local Debian base"
    base=$(ensure_local_base)
  fi
fi

# The build context: the gVisor compatibility shim (setup/sandbox-compat), compiled
# here with the host's C compiler, or nothing when there is none to be had.
compat_src="$here/sandbox-compat/statx-compat.c"
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
if ! command -v cc >/dev/null && [ "$(id -u)" -eq 0 ]; then
  apt_install gcc
fi
if command -v cc >/dev/null &&
  cc -O2 -shared -fPIC -nostdlib -ffreestanding -fvisibility=hidden \
    -o "$context/statx-compat.so" "$compat_src" 2>"$SUPPORT_AGENT_STATE_DIR/statx-compat.log"; then
  compat="built from $(sha256sum <"$compat_src" | cut -c1-16)"
else
  compat=none
  log "sandbox: no C compiler for the gVisor shim ($SUPPORT_AGENT_STATE_DIR/statx-compat.log): under gVisor, ls -l and stat will fail"
fi

base_id=$(docker image inspect -f '{{.Id}}' "$base")
digest=$( (cat "$root/Dockerfile.sandbox"; echo "$base_id"; echo "$compat") | sha256sum | cut -c1-16)
image="$image_repo:$digest"
if docker image inspect "$image" >/dev/null 2>&1; then
  log "sandbox: image $image is up to date"
else
  log "sandbox: building $image on $base"
  # A base that already has every tool builds with no network at all; a
  # public slim base needs the network for its apt-get step.
  network=default
  case "$base" in support-agent-base:*) network=none ;; esac
  docker build -q --network "$network" --build-arg BASE_IMAGE="$base" \
    -t "$image" -f "$root/Dockerfile.sandbox" "$context" >/dev/null
fi
docker tag "$image" "$image_repo:latest"
echo "$image"
