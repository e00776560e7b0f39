#!/usr/bin/env bash
# Make sure a Docker daemon answers. A daemon that already answers (a user's
# machine, or a remote DOCKER_HOST) is used as it is; otherwise Debian's
# docker.io is installed and dockerd is started with no bridge network and no
# iptables rules: sandboxes never need a network, and nothing here may route
# traffic anywhere but loopback.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if docker info >/dev/null 2>&1; then
  log "docker: daemon answers (server $(docker version -f '{{.Server.Version}}'))"
  exit 0
fi
[ -z "${DOCKER_HOST:-}" ] || die "DOCKER_HOST=$DOCKER_HOST does not answer"

apt_install docker.io
command -v docker >/dev/null || die "docker client missing after installing docker.io"

log "docker: starting dockerd (--bridge=none --iptables=false)"
nohup dockerd --bridge=none --iptables=false --ip6tables=false \
  >"$SUPPORT_AGENT_STATE_DIR/dockerd.log" 2>&1 &
echo $! >"$SUPPORT_AGENT_STATE_DIR/dockerd.pid"
wait_for 60 docker info || die "dockerd did not answer within 60 s; see $SUPPORT_AGENT_STATE_DIR/dockerd.log"
log "docker: daemon answers (server $(docker version -f '{{.Server.Version}}'))"
