#!/usr/bin/env bash
# scripts/image/engine.sh ARGS…: the container engine, with the flags this kind of host needs.
# The image scripts and test/deploy/image.test.ts run every engine command through here, so
# those flags have one home.
#
#   docker   when its daemon answers (`docker info`);
#   podman   otherwise. On these machines crun fails on the host's hybrid cgroups and no
#            systemd runs, so runc and the cgroupfs manager are named when present; and
#            podman's default ulimits (nofile 1048576) exceed the host's hard limits and are
#            refused, so run, create and build get explicit ones (below).
#
# NIMA_ENGINE=docker|podman forces one. `engine.sh --which` prints the engine chosen.
set -euo pipefail

pick() {
  if [ -n "${NIMA_ENGINE-}" ]; then echo "$NIMA_ENGINE"; return; fi
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then echo docker; return; fi
  if command -v podman >/dev/null 2>&1; then echo podman; return; fi
  echo none
}

engine=$(pick)
if [ "${1-}" = "--which" ]; then echo "$engine"; exit 0; fi
case "$engine" in
  docker) exec docker "$@" ;;
  podman) ;;
  *) echo "engine.sh: neither a docker daemon nor podman is available (apt-get install podman runc)" >&2; exit 127 ;;
esac

global=""
if command -v runc >/dev/null 2>&1; then global="$global --runtime runc"; fi
if [ ! -d /run/systemd/system ]; then global="$global --cgroup-manager cgroupfs"; fi

# 4096 open files and processes (as `docker run` gets on many hosts), or the caller's hard
# limit where that is lower. Not the caller's own limits: runc is refused raising nproc to
# this host's 96367 (tried), while 4096 is accepted.
limits=""
limit() { # name hard
  local n=4096
  case "$2" in *[!0-9]*|"") ;; *) [ "$2" -lt "$n" ] && n=$2 ;; esac
  limits="$limits --ulimit $1=$n:$n"
}
limit nofile "$(ulimit -Hn)"
limit nproc "$(ulimit -Hu)"

command=${1-}
case "$command" in
  run|create|build)
    shift
    # shellcheck disable=SC2086 # the flag lists are words by design
    exec podman $global "$command" $limits "$@" ;;
  *)
    # shellcheck disable=SC2086
    exec podman $global "$@" ;;
esac
