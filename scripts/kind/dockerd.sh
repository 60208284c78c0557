#!/usr/bin/env bash
# A private Docker engine for kind: Debian's dockerd with its own data root, exec root and socket in DIR,
# sharing nothing with a system Docker, and writing no iptables rules (kind's nodes reach each other on the
# bridge of the `kind` network; published ports go through docker-proxy).
#   dockerd.sh start DIR   starts it, prints its DOCKER_HOST when it answers
#   dockerd.sh stop DIR    stops it (and every container it runs), removes its networks and DIR
set -euo pipefail
cmd=${1:?start or stop}
dir=${2:?the engine folder}
host="unix://$dir/docker.sock"
case "$cmd" in
start)
  dockerd=$(PATH="$PATH:/usr/sbin:/sbin" command -v dockerd) || { echo "dockerd is missing (docker.io)" >&2; exit 1; }
  mkdir -p "$dir"
  # runc through the cluster's wrapper: privileged containers (kind's nodes) on a machine whose root lacks
  # capabilities (scripts/cluster/runc-wrapper.sh).
  wrapper="$(cd "$(dirname "$0")/../cluster" && pwd)/runc-wrapper.sh"
  setsid "$dockerd" --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
    --add-runtime "mcsb-runc=$wrapper" --default-runtime mcsb-runc \
    --containerd-namespace=mcstatbot-kind --containerd-plugins-namespace=mcstatbot-kind-plugins \
    --data-root="$dir/data" --exec-root="$dir/exec" --pidfile="$dir/docker.pid" --host="$host" \
    --log-level=warn >"$dir/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 120); do
    if DOCKER_HOST=$host docker version >/dev/null 2>&1; then
      echo "$host"
      exit 0
    fi
    sleep 0.5
  done
  tail -30 "$dir/dockerd.log" >&2
  exit 1
  ;;
stop)
  if [ -S "$dir/docker.sock" ]; then
    export DOCKER_HOST=$host
    mapfile -t running < <(docker ps -aq)
    [ ${#running[@]} -eq 0 ] || docker rm -f -v "${running[@]}" >/dev/null || true
    docker network prune -f >/dev/null || true
  fi
  if [ -f "$dir/docker.pid" ]; then
    pid=$(cat "$dir/docker.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  # dockerd unmounts its layers as it stops; whatever is still mounted under DIR goes before DIR does.
  grep -o " $dir/[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: dockerd.sh start|stop DIR" >&2
  exit 2
  ;;
esac
