#!/usr/bin/env bash
# Make sure a Docker daemon answers, with gVisor's runsc registered where
# set-up owns the daemon.
#
# A daemon that already answers (a user's machine, or a remote DOCKER_HOST) is
# used as it is: set-up only says whether gVisor is registered in it. Otherwise
# Debian's docker.io and runsc are installed, runsc is registered in
# /etc/docker/daemon.json and dockerd is started with no bridge network and no
# iptables rules: sandboxes never need a network, and nothing here may route
# traffic anywhere but loopback. A daemon that set-up started earlier (it
# carries the label below) gets runsc registered and its configuration reloaded
# (SIGHUP: running containers are not touched).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DAEMON_JSON=${SUPPORT_AGENT_DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}
SETUP_LABEL=support-agent.setup=1
# gVisor cannot run in the host's network namespace (dockerd here has no
# bridge): "--network=none" gives each sandbox a loopback of its own. (Not
# "--oci-seccomp": this release then turns clone3 into EPERM, which breaks
# system() and popen(); the sandbox's supervisor installs its own filter.)
RUNSC_ARGS='["--network=none"]'

daemon_runtimes() { docker info -f '{{range $name, $_ := .Runtimes}}{{$name}} {{end}}' 2>/dev/null; }
has_runsc() { [[ " $(daemon_runtimes) " == *" runsc "* ]]; }
# runsc is registered with its arguments (the daemon's view, after a reload).
runsc_complete() {
  [[ "$(docker info -f '{{json .Runtimes.runsc.Args}}' 2>/dev/null)" == "$(tr -d ' ' <<<"$RUNSC_ARGS")" ]]
}
server_version() { docker version -f '{{.Server.Version}}'; }

# The local dockerd's pid, when it is the daemon that answers.
local_daemon_pid() {
  case "${DOCKER_HOST:-unix:///var/run/docker.sock}" in
    unix:///var/run/docker.sock | unix:///run/docker.sock) ;;
    *) return 1 ;;
  esac
  local pid
  pid=$(cat /var/run/docker.pid 2>/dev/null) || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || return 1
  echo "$pid"
}

# Whether set-up started the local daemon: it carries set-up's label, or it is
# the one whose pid set-up recorded.
started_by_setup() {
  local pid
  pid=$(local_daemon_pid) || return 1
  [[ " $(docker info -f '{{join .Labels " "}}' 2>/dev/null) " == *" $SETUP_LABEL "* ]] && return 0
  [ "$(cat "$SUPPORT_AGENT_STATE_DIR/dockerd.pid" 2>/dev/null)" = "$pid" ]
}

# Merge the runsc runtime into daemon.json, keeping every other key. Prints
# "changed" when the file was written.
register_runsc() {
  local runsc
  runsc=$(command -v runsc) || die "runsc missing after installing it"
  mkdir -p "$(dirname "$DAEMON_JSON")"
  python3 - "$DAEMON_JSON" "$runsc" "$RUNSC_ARGS" <<'EOF'
import json, os, sys
path, runsc, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
try:
    with open(path) as f:
        config = json.load(f)
except FileNotFoundError:
    config = {}
except ValueError as exc:
    sys.exit(f"[setup] error: {path} is not valid JSON ({exc}); fix it, then re-run")
want = {"path": runsc, "runtimeArgs": args}
runtimes = config.setdefault("runtimes", {})
if runtimes.get("runsc") != want:
    runtimes["runsc"] = want
    with open(path + ".tmp", "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)
    print("changed")
EOF
}

if docker info >/dev/null 2>&1; then
  if pid=$(local_daemon_pid) && started_by_setup; then
    apt_install runsc
    changed=$(register_runsc)
    if [ -n "$changed" ] || ! runsc_complete; then
      log "docker: registering gVisor (runsc) in $DAEMON_JSON and reloading dockerd (pid $pid)"
      kill -HUP "$pid"
      wait_for 30 runsc_complete || die "dockerd did not pick up runsc; see $DAEMON_JSON and dockerd's log"
    fi
    log "docker: daemon answers (server $(server_version)); gVisor (runsc) is registered: sandboxes run under it"
  elif has_runsc; then
    log "docker: daemon answers (server $(server_version)); gVisor (runsc) is registered: sandboxes run under it"
  else
    log "docker: daemon answers (server $(server_version)) without gVisor (runsc): sandboxes run under runc and share the host kernel (register runsc in that daemon to change it)"
  fi
  exit 0
fi
[ -z "${DOCKER_HOST:-}" ] || die "DOCKER_HOST=$DOCKER_HOST does not answer"

apt_install docker.io runsc
command -v docker >/dev/null || die "docker client missing after installing docker.io"
changed=$(register_runsc)
[ -z "$changed" ] || log "docker: registered gVisor (runsc) in $DAEMON_JSON"

log "docker: starting dockerd (--bridge=none --iptables=false)"
nohup dockerd --bridge=none --iptables=false --ip6tables=false --label "$SETUP_LABEL" \
  >"$SUPPORT_AGENT_STATE_DIR/dockerd.log" 2>&1 &
echo $! >"$SUPPORT_AGENT_STATE_DIR/dockerd.pid"
wait_for 60 docker info || die "dockerd did not answer within 60 s; see $SUPPORT_AGENT_STATE_DIR/dockerd.log"
runsc_complete || die "dockerd started without runsc; see $DAEMON_JSON"
log "docker: daemon answers (server $(server_version)); gVisor (runsc) is registered: sandboxes run under it"
