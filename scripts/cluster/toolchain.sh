#!/usr/bin/env bash
# Builds the local Kubernetes cluster's binaries from Go modules, pinned in scripts/cluster/versions.env, into
# a cache folder outside the checkout, and does nothing when they are already there:
#   ${MCSTATBOT_CACHE:-$HOME/.cache/mcstatbot}/cluster/<key>/bin
# where <key> is derived from versions.env (a fresh clone on the same machine finds the same folder).
# Built: kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl (k8s.io/kubernetes
# through a wrapper module), etcd, coredns (the Corefile's plugins only), metrics-server, traefik (no ACME DNS
# providers). containerd, runc and the CNI plugins come from Debian. Every build runs under `nice -n 19`;
# the cold time of each is written to build-times.txt.
# Prints the cache folder on its last line of stdout.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$HERE/versions.env"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# apt steps of this script and of the other set-up script (make test runs them side by side) take turns.
APT_LOCK=${TMPDIR:-/tmp}/mcstatbot-apt.lock

KEY="k8s-${KUBERNETES_VERSION}-$(grep -v '^#' "$HERE/versions.env" | sha256sum | cut -c1-12)"
CACHE_ROOT="${MCSTATBOT_CACHE:-$HOME/.cache/mcstatbot}/cluster"
CACHE="$CACHE_ROOT/$KEY"
BIN="$CACHE/bin"
mkdir -p "$BIN" "$CACHE/src"

# --- Debian packages: the container runtime, CNI plugins and what the node needs ---------------
apt_missing=()
command -v containerd >/dev/null 2>&1 || apt_missing+=(containerd)
command -v runc >/dev/null 2>&1 || apt_missing+=(runc)
[ -x /usr/lib/cni/bridge ] || apt_missing+=(containernetworking-plugins)
command -v conntrack >/dev/null 2>&1 || apt_missing+=(conntrack)
command -v iptables >/dev/null 2>&1 || apt_missing+=(iptables)
command -v nft >/dev/null 2>&1 || apt_missing+=(nftables)
command -v openssl >/dev/null 2>&1 || apt_missing+=(openssl)
command -v gcc >/dev/null 2>&1 || apt_missing+=(gcc libc6-dev)
command -v debootstrap >/dev/null 2>&1 || apt_missing+=(debootstrap)
command -v ethtool >/dev/null 2>&1 || apt_missing+=(ethtool)
command -v socat >/dev/null 2>&1 || apt_missing+=(socat)
if [ ${#apt_missing[@]} -gt 0 ]; then
  log "apt-get install ${apt_missing[*]}"
  as_root flock "$APT_LOCK" apt-get update -qq
  as_root flock "$APT_LOCK" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
  # Where systemd runs, Debian starts a system containerd; the cluster runs its own.
  if [[ " ${apt_missing[*]} " == *" containerd "* ]] && [ -d /run/systemd/system ]; then
    as_root systemctl disable --now containerd.service >/dev/null 2>&1 || true
  fi
fi

# shellcheck source=go-build.sh
source "$HERE/go-build.sh"

# --- Kubernetes -----------------------------------------------------------------------------------
K8S_DIR="$CACHE/src/kubernetes"
# kubeadm is for the kind node image (scripts/kind/node-image.sh); the cluster itself is set up without it.
k8s_bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl kubeadm)
need_k8s=0
for b in "${k8s_bins[@]}"; do [ -x "$BIN/$b" ] || need_k8s=1; done
if [ "$need_k8s" = 1 ]; then
  log "resolving k8s.io/kubernetes $KUBERNETES_VERSION"
  k8s_mod=$(cd "$CACHE/src" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION")
  k8s_src=$(printf '%s' "$k8s_mod" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  # The tag's time from the module proxy's .info (a build of the same pins reports the same buildDate).
  k8s_info=$(printf '%s' "$k8s_mod" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Info"])')
  build_date=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Time"].replace(".000", ""))' "$k8s_info")
  # Each staging module k8s.io/<name> => its published v0.<minor>.<patch>; the tag's godebug line kept.
  mapfile -t staging < <(sed -n 's#^\s*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$k8s_src/go.mod")
  replaces=("replace (")
  for m in "${staging[@]}"; do replaces+=("	$m => $m $KUBERNETES_STAGING_VERSION"); done
  replaces+=(")")
  godebug=$(grep '^godebug' "$k8s_src/go.mod" || true)
  wrapper "$K8S_DIR" "k8s.io/kubernetes@$KUBERNETES_VERSION" "$godebug" "${replaces[@]}"
  pkgs=()
  for b in "${k8s_bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  go_get "$K8S_DIR" "${pkgs[@]/%/@$KUBERNETES_VERSION}"
  minor=${KUBERNETES_VERSION#v1.}
  minor=${minor%%.*}
  ld=""
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=$build_date"
  done
  for b in "${k8s_bins[@]}"; do build "$b" "$K8S_DIR" "k8s.io/kubernetes/cmd/$b" "$ld"; done
  # The pause container's source, for scripts/cluster/images.sh.
  cp "$k8s_src/build/pause/linux/pause.c" "$CACHE/src/pause.c"
fi

# --- etcd (go.etcd.io/etcd/server/v3; its sibling modules replaced by their published versions) --------
if [ ! -x "$BIN/etcd" ] || [ ! -x "$BIN/etcdctl" ]; then
  E="$ETCD_VERSION"
  wrapper "$CACHE/src/etcd" "go.etcd.io/etcd/server/v3@$E" \
    "replace (" \
    "	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 $E" \
    "	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 $E" \
    "	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 $E" \
    "	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 $E" \
    "	go.etcd.io/etcd/etcdctl/v3 => go.etcd.io/etcd/etcdctl/v3 $E" \
    ")"
  go_get "$CACHE/src/etcd" "go.etcd.io/etcd/server/v3@$E" "go.etcd.io/etcd/etcdctl/v3@$E"
  build etcd "$CACHE/src/etcd" go.etcd.io/etcd/server/v3 \
    "-X go.etcd.io/etcd/api/v3/version.GitSHA=${E}"
  build etcdctl "$CACHE/src/etcd" go.etcd.io/etcd/etcdctl/v3
fi

# --- CoreDNS (only the plugins of COREDNS_PLUGINS) ----------------------------------------------
# CoreDNS's own main package imports every plugin (core/plugin); the wrapper module's main imports coremain
# and only the plugins the cluster's Corefile names, as a CoreDNS built with a shorter plugin.cfg would.
# The directive order stays CoreDNS's own (core/dnsserver's Directives).
if [ ! -x "$BIN/coredns" ]; then
  C="$CACHE/src/coredns"
  wrapper "$C" "github.com/coredns/coredns@$COREDNS_VERSION"
  if [ ! -f "$C/main.go" ]; then
    {
      echo "// Written by scripts/cluster/toolchain.sh: CoreDNS with the plugins of COREDNS_PLUGINS only."
      echo "package main"
      echo
      echo "import ("
      echo "	\"github.com/coredns/coredns/coremain\""
      echo
      for plugin in $COREDNS_PLUGINS; do echo "	_ \"github.com/coredns/coredns/plugin/$plugin\""; done
      echo ")"
      echo
      echo "func main() { coremain.Run() }"
    } >"$C/main.go.tmp"
    mv "$C/main.go.tmp" "$C/main.go"
  fi
  go_get "$C" "github.com/coredns/coredns@$COREDNS_VERSION"
  build coredns "$C" . "-X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION"
fi

# --- metrics-server (METRICS_SERVER_DEPS=kubernetes: on the Kubernetes build's module versions) ----------
# Every module metrics-server shares with the Kubernetes build (the k8s.io libraries, their dependencies) is
# replaced by the version kube-apiserver was built with, so Go's build cache already holds those packages
# and only metrics-server's own are compiled.
if [ ! -x "$BIN/metrics-server" ]; then
  MS="$CACHE/src/metrics-server"
  wrapper "$MS" "sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION"
  go_get "$MS" "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
  if [ "${METRICS_SERVER_DEPS:-own}" = kubernetes ] && [ ! -f "$MS/.aligned" ]; then
    list='{{.Path}} {{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}'
    mapfile -t align < <(LC_ALL=C join <(cd "$MS" && go list -m -f "$list" all | LC_ALL=C sort) \
      <(cd "$K8S_DIR" && go list -m -f "$list" all | LC_ALL=C sort) |
      awk '$2 != $3 && $3 != "" {print "-replace=" $1 "=" $1 "@" $3}')
    if [ ${#align[@]} -gt 0 ]; then (cd "$MS" && go mod edit "${align[@]}"); fi
    touch "$MS/.aligned"
  fi
  build metrics-server "$MS" sigs.k8s.io/metrics-server/cmd/metrics-server \
    "-X sigs.k8s.io/metrics-server/pkg/version.gitVersion=$METRICS_SERVER_VERSION"
fi

# --- Traefik v3 (the ingress controller; its web UI is not built) ---------------------------------
# With TRAEFIK_ACME_DNS_PROVIDERS=none, lego (Traefik's ACME client) is replaced by a copy of the same
# version whose providers/dns package is a stub refusing every provider name: lego's generated factory
# imports every DNS provider and their cloud SDKs (339 of Traefik's 2,496 packages), which the cluster
# never uses.
if [ ! -x "$BIN/traefik" ]; then
  T="$TRAEFIK_VERSION"
  TD="$CACHE/src/traefik"
  t_mod=$(cd "$CACHE/src" && go mod download -json "github.com/traefik/traefik/v3@$T")
  t_src=$(printf '%s' "$t_mod" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  # Traefik's own replace and exclude lines, copied from its go.mod.
  mapfile -t t_lines < <(awk '/^replace \(/{p=1} p{print} /^\)/{p=0} /^exclude /{print}' "$t_src/go.mod")
  wrapper "$TD" "github.com/traefik/traefik/v3@$T" "${t_lines[@]}"
  go_get "$TD" "github.com/traefik/traefik/v3/cmd/traefik@$T"
  if [ "${TRAEFIK_ACME_DNS_PROVIDERS:-all}" = none ] && [ ! -d "$TD/lego" ]; then
    lego_version=$(cd "$TD" && go list -m -f '{{.Version}}' github.com/go-acme/lego/v4)
    lego_src=$(cd "$CACHE/src" && go mod download -json "github.com/go-acme/lego/v4@$lego_version" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
    rm -rf "$TD/lego.tmp"
    cp -r "$lego_src" "$TD/lego.tmp"
    chmod -R u+w "$TD/lego.tmp"
    find "$TD/lego.tmp/providers/dns" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
    rm -f "$TD/lego.tmp/providers/dns/"*.go
    cat >"$TD/lego.tmp/providers/dns/dns_providers.go" <<EOF
// Package dns is written by scripts/cluster/toolchain.sh in place of lego $lego_version's generated
// factory: this build of Traefik has no ACME DNS-challenge provider.
package dns

import (
	"fmt"

	"github.com/go-acme/lego/v4/challenge"
)

// NewDNSChallengeProviderByName refuses every name: no DNS provider is built in.
func NewDNSChallengeProviderByName(name string) (challenge.Provider, error) {
	return nil, fmt.Errorf("unrecognized DNS provider: %s (this Traefik is built without ACME DNS providers)", name)
}
EOF
    mv "$TD/lego.tmp" "$TD/lego"
    (cd "$TD" && go mod edit -replace "github.com/go-acme/lego/v4=./lego")
  fi
  build traefik "$TD" github.com/traefik/traefik/v3/cmd/traefik \
    "-X github.com/traefik/traefik/v3/pkg/version.Version=$T"
fi

# Traefik's CRDs (Middleware among them: the chart's source-range rule for the traefik class), as the
# Traefik module publishes them; applied with the add-ons by cluster.sh.
if [ ! -f "$CACHE/traefik-crds.yaml" ]; then
  t_dir=$(cd "$CACHE/src" && go mod download -json "github.com/traefik/traefik/v3@$TRAEFIK_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  cp "$t_dir/docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml" \
    "$CACHE/traefik-crds.yaml.tmp"
  mv "$CACHE/traefik-crds.yaml.tmp" "$CACHE/traefik-crds.yaml"
fi

log "toolchain ready in $CACHE"
echo "$CACHE"
