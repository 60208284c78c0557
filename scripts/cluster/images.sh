#!/usr/bin/env bash
# The cluster's own images, built here and never pulled, as docker-archive tarballs cached beside the
# binaries (<cache>/images), then imported into the cluster's containerd:
#   mcstatbot.local/pause:<v>           kubernetes' build/pause/linux/pause.c, gcc -static
#   mcstatbot.local/coredns:<v>         the coredns binary alone (scratch)
#   mcstatbot.local/metrics-server:<v>  the metrics-server binary alone (scratch)
#   mcstatbot.local/traefik:<v>         the traefik binary alone (scratch)
#   mcstatbot.local/redis:bookworm      debootstrap --variant=minbase with Debian's redis-server and redis-tools
#   mcstatbot.local/prometheus:<v>      Debian's prometheus binary with the C library it links (no shell);
#                                       <v> is the installed package's version (the tarball is named by it)
# Usage: images.sh CACHE [CONTAINERD_SOCKET]   (without a socket it only builds)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$HERE/versions.env"
CACHE=$1
SOCKET=${2:-}
OUT=$CACHE/images
BIN=$CACHE/bin
MIRROR=${MCSTATBOT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$OUT"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# archive TAG ROOTFS OUT.tar CONFIG_JSON (scripts/cluster/archive.sh).
# shellcheck source=archive.sh
source "$HERE/archive.sh"

# scratch NAME TAG BINARY USER ENTRYPOINT_JSON: the binary alone, plus a /tmp.
scratch() {
  local name=$1 tag=$2 binary=$3 user=$4 entry=$5 root
  [ -f "$OUT/$name.tar" ] && return 0
  log "image $tag"
  root=$(mktemp -d)
  install -m 0755 "$binary" "$root/$(basename "$binary")"
  mkdir -m 1777 "$root/tmp"
  archive "$tag" "$root" "$OUT/$name.tar" \
    "{\"User\":\"$user\",\"Entrypoint\":$entry,\"Env\":[\"PATH=/\"]}"
  rm -rf "$root"
}

# --- pause -------------------------------------------------------------------------------------
if [ ! -f "$OUT/pause.tar" ]; then
  log "image mcstatbot.local/pause:$PAUSE_VERSION (gcc -static)"
  root=$(mktemp -d)
  gcc -Os -static -Wall -Werror -DVERSION="v$PAUSE_VERSION" -o "$root/pause" "$CACHE/src/pause.c"
  strip "$root/pause"
  archive "mcstatbot.local/pause:$PAUSE_VERSION" "$root" "$OUT/pause.tar" \
    '{"User":"65535:65535","Entrypoint":["/pause"]}'
  rm -rf "$root"
fi

# --- Redis from Debian ---------------------------------------------------------------------------
if [ ! -f "$OUT/redis.tar" ]; then
  log "image mcstatbot.local/redis:$DEBIAN_SUITE (debootstrap, Debian's redis-server)"
  start=$(date +%s)
  root=$(mktemp -d)
  nice -n 19 debootstrap --variant=minbase --include=redis-server,redis-tools "$DEBIAN_SUITE" "$root" "$MIRROR" >/dev/null
  mkdir -p "$root/data"
  # Like the official image's entrypoint: `redis-server ...` runs with protected mode off (without it, a
  # Redis with no password and no bind line refuses every client that is not on its loopback).
  cat >"$root/usr/local/bin/redis-entrypoint" <<'SH'
#!/bin/sh
[ "${1:-}" = redis-server ] && shift
exec redis-server --protected-mode no "$@"
SH
  chmod 0755 "$root/usr/local/bin/redis-entrypoint"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
  archive "mcstatbot.local/redis:$DEBIAN_SUITE" "$root" "$OUT/redis.tar" \
    '{"User":"999:999","Entrypoint":["/usr/local/bin/redis-entrypoint"],"Cmd":["redis-server"],"WorkingDir":"/data","Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}'
  rm -rf "$root"
  printf 'redis-image %ss\n' "$(($(date +%s) - start))" >>"$CACHE/build-times.txt"
fi

# --- Prometheus from Debian (tests/cluster/test_monitoring.py) -----------------------------------
# The binary of Debian's `prometheus` package (scripts/install-test-deps.sh installs it for promtool; this
# script installs it too when it runs first) and the shared libraries it links, nothing else. Its web UI
# assets are left out: the tests use the HTTP API only.
if ! command -v prometheus >/dev/null 2>&1; then
  log "apt-get install prometheus"
  APT_LOCK=${TMPDIR:-/tmp}/mcstatbot-apt.lock
  flock "$APT_LOCK" apt-get update -qq
  flock "$APT_LOCK" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if [ -d /run/systemd/system ]; then systemctl disable --now prometheus.service >/dev/null 2>&1 || true; fi
fi
PROMETHEUS_VERSION=$(prometheus --version 2>&1 | awk 'NR == 1 {print $3}')
PROMETHEUS_VERSION=${PROMETHEUS_VERSION%%+*}
if [ ! -f "$OUT/prometheus-$PROMETHEUS_VERSION.tar" ]; then
  log "image mcstatbot.local/prometheus:$PROMETHEUS_VERSION (Debian's binary)"
  root=$(mktemp -d)
  chmod 0755 "$root"
  install -D -m 0755 "$(command -v prometheus)" "$root/bin/prometheus"
  ldd "$(command -v prometheus)" | awk '/=> \// {print $3} /^\t\/[^ ]*ld-linux/ {print $1}' | while read -r lib; do
    install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
  done
  mkdir -m 1777 "$root/tmp"
  mkdir -m 0777 "$root/prometheus"
  archive "mcstatbot.local/prometheus:$PROMETHEUS_VERSION" "$root" "$OUT/prometheus-$PROMETHEUS_VERSION.tar" \
    '{"User":"65534:65534","Entrypoint":["/bin/prometheus"],"WorkingDir":"/prometheus","Env":["PATH=/bin"]}'
  rm -rf "$root"
fi

scratch coredns "mcstatbot.local/coredns:$COREDNS_VERSION" "$BIN/coredns" 65532:65532 '["/coredns"]'
scratch metrics-server "mcstatbot.local/metrics-server:$METRICS_SERVER_VERSION" "$BIN/metrics-server" \
  65532:65532 '["/metrics-server"]'
scratch traefik "mcstatbot.local/traefik:$TRAEFIK_VERSION" "$BIN/traefik" 65532:65532 '["/traefik"]'

if [ -n "$SOCKET" ]; then
  for t in pause coredns metrics-server traefik redis "prometheus-$PROMETHEUS_VERSION"; do
    ctr --address "$SOCKET" -n k8s.io images import "$OUT/$t.tar" >/dev/null
  done
  log "images imported"
fi
