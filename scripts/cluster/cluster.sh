#!/usr/bin/env bash
# A single-node Kubernetes cluster inside a network namespace of its own, started and stopped by this script.
#
#   scripts/cluster/cluster.sh up      start it (bounded in time), print `export KUBECONFIG=...`
#   scripts/cluster/cluster.sh down    stop it and remove everything it made
#   scripts/cluster/cluster.sh status  say whether it runs
#
# Everything runs as root in the network namespace `mcsb-<name>`: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, containerd (own root, state and socket), kubelet (cgroupfs driver, cgroup root
# /mcsb-<name>), kube-proxy (iptables mode), the bridge CNI, then CoreDNS, metrics-server and Traefik as pods.
# The namespace's only link is a veth pair to the host on 10.213.<n>.0/30 (host .1, node .2): the host's
# tests reach the API server and Traefik's NodePort on .2, pods reach services of the host's tests on .1.
# The namespace has no default route, so no packet of the cluster can leave this machine.
#
# Environment: CLUSTER_NAME (default `dev`), CLUSTER_INDEX (third octet of the link subnet, default 1),
# CLUSTER_DIR (state, default /tmp/mcsb-<name>), CLUSTER_START_TIMEOUT (seconds, default 300),
# MCSTATBOT_CACHE (the toolchain cache root, see toolchain.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=versions.env
source "$HERE/versions.env"

NAME=${CLUSTER_NAME:-dev}
INDEX=${CLUSTER_INDEX:-1}
DIR=${CLUSTER_DIR:-/tmp/mcsb-$NAME}
TIMEOUT=${CLUSTER_START_TIMEOUT:-300}
NS=mcsb-$NAME
HOST_IF=mcsb-$NAME # host end of the veth pair (at most 15 characters)
HOST_IP=10.213.$INDEX.1
NODE_IP=10.213.$INDEX.2
POD_CIDR=10.214.0.0/24
SERVICE_CIDR=10.215.0.0/24
API_SERVICE_IP=10.215.0.1
DNS_IP=10.215.0.10
NODE=mcsb-node
CGROUP_ROOT=/mcsb-$NAME
TRAEFIK_NODEPORT=30080

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'cluster: %s\n' "$*" >&2; exit 1; }
in_ns() { nsenter --net="/run/netns/$NS" -- "$@"; }

# --- helpers ------------------------------------------------------------------------------------
start_bg() { # name command...: run in the namespace, in its own session, log and pid under $DIR
  local name=$1
  shift
  setsid nsenter --net="/run/netns/$NS" -- "$@" >"$DIR/log/$name.log" 2>&1 </dev/null &
  echo $! >"$DIR/pids/$name"
}

wait_for() { # what seconds command...: retry until the command succeeds
  local what=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ] || [ "$SECONDS" -ge "$START_DEADLINE" ]; then
      log "timed out waiting for $what; the last attempt said:"
      "$@" >&2 || true
      return 1
    fi
    for f in "$DIR"/pids/*; do
      [ -f "$f" ] || continue
      kill -0 "$(cat "$f")" 2>/dev/null || { log "$(basename "$f") exited; its log:"; tail -n 40 "$DIR/log/$(basename "$f").log" >&2; return 1; }
    done
    sleep 1
  done
}

kubectl_() { "$BIN/kubectl" --kubeconfig "$DIR/admin.kubeconfig" "$@"; }

# --- certificates (openssl): one CA, one front-proxy CA for aggregation, a key pair for tokens --------
cert() { # name CN O "SANs" usage(client|server|both)
  local name=$1 cn=$2 org=$3 sans=$4 usage=$5 pki=$DIR/pki
  local subj="/CN=$cn"
  [ -n "$org" ] && subj="/O=$org$subj"
  local ca=ca
  [[ $name == front-proxy-client ]] && ca=front-proxy-ca
  local eku
  case $usage in
    client) eku=clientAuth ;;
    server) eku=serverAuth ;;
    *) eku=serverAuth,clientAuth ;;
  esac
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -n "$sans" ] && echo "subjectAltName=$sans"
  } >"$pki/$name.ext"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/$ca.crt" -CAkey "$pki/$ca.key" -CAcreateserial \
    -days 30 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}

make_pki() {
  local pki=$DIR/pki
  mkdir -p "$pki"
  chmod 700 "$pki"
  for ca in ca front-proxy-ca; do
    openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$pki/$ca.key" -days 30 -sha256 \
      -subj "/CN=mcstatbot-local-$ca" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" -out "$pki/$ca.crt" 2>/dev/null
  done
  cert apiserver kube-apiserver "" \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:$API_SERVICE_IP,IP:$NODE_IP,IP:127.0.0.1" server
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "" client
  cert front-proxy-client front-proxy-client "" "" client
  cert admin mcstatbot-admin system:masters "" client
  cert controller-manager system:kube-controller-manager "" "" client
  cert scheduler system:kube-scheduler "" "" client
  cert kubelet "system:node:$NODE" system:nodes "" client
  cert kubelet-serving "system:node:$NODE" system:nodes "DNS:$NODE,IP:$NODE_IP" server
  cert kube-proxy system:kube-proxy "" "" client
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

kubeconfig() { # file user cert
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: mcsb-$NAME
    cluster:
      server: https://$NODE_IP:6443
      certificate-authority: $DIR/pki/ca.crt
users:
  - name: $2
    user:
      client-certificate: $DIR/pki/$3.crt
      client-key: $DIR/pki/$3.key
contexts:
  - name: mcsb-$NAME
    context: {cluster: mcsb-$NAME, user: $2}
current-context: mcsb-$NAME
EOF
}

# --- configuration files ------------------------------------------------------------------------
write_configs() {
  mkdir -p "$DIR/containerd" "$DIR/cni/net.d" "$DIR/cni/ipam" "$DIR/kubelet" "$DIR/pod-logs"
  cat >"$DIR/containerd/config.toml" <<EOF
version = 2
root = "$DIR/containerd/root"
state = "$DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$DIR/containerd.sock"
[ttrpc]
  address = "$DIR/containerd.ttrpc.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "mcstatbot.local/pause:$PAUSE_VERSION"
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$HERE/runc-wrapper.sh"
        Root = "$DIR/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$DIR/cni/net.d"
EOF
  cat >"$DIR/cni/net.d/10-mcsb.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "mcsb",
  "plugins": [
    {"type": "bridge", "bridge": "mcsb0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$DIR/cni/ipam",
              "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  # Pods with dnsPolicy Default (CoreDNS) get this: no upstream resolver, nothing is resolved off the machine.
  echo "options ndots:1" >"$DIR/resolv.conf"
  cat >"$DIR/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
containerRuntimeEndpoint: unix://$DIR/containerd.sock
podLogsDir: $DIR/pod-logs
failSwapOn: false
protectKernelDefaults: false
makeIPTablesUtilChains: true
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
resolvConf: $DIR/resolv.conf
tlsCertFile: $DIR/pki/kubelet-serving.crt
tlsPrivateKeyFile: $DIR/pki/kubelet-serving.key
rotateCertificates: false
serverTLSBootstrap: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $DIR/pki/ca.crt}
authorization:
  mode: Webhook
evictionHard:
  memory.available: 200Mi
  nodefs.available: 2%
  imagefs.available: 2%
  nodefs.inodesFree: 2%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 110
podPidsLimit: 4096
serializeImagePulls: false
staticPodPath: ""
EOF
  cat >"$DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: $DIR/kube-proxy.kubeconfig
hostnameOverride: $NODE
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$NODE_IP/32"]
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
  kubeconfig "$DIR/admin.kubeconfig" admin admin
  kubeconfig "$DIR/controller-manager.kubeconfig" controller-manager controller-manager
  kubeconfig "$DIR/scheduler.kubeconfig" scheduler scheduler
  kubeconfig "$DIR/kubelet.kubeconfig" kubelet kubelet
  kubeconfig "$DIR/kube-proxy.kubeconfig" kube-proxy kube-proxy
}

# Global kernel settings kubelet changes (it sets vm.overcommit_memory, kernel.panic, kernel.panic_on_oops):
# saved before and put back after.
SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops)

cgroup_dirs() { # the cluster's cgroup root in every hierarchy (TYPE: cgroup for v1 only, default both)
  awk -v t="${1:-cgroup|cgroup2}" -v r="$CGROUP_ROOT" '$3 ~ "^(" t ")$" {print $2 r}' /proc/self/mounts | sort -u
}

# kubelet wants its cgroup root to exist; cpuset needs its CPUs and memory nodes copied from the parent.
make_cgroup_root() {
  local d
  for d in $(cgroup_dirs cgroup); do
    mkdir -p "$d"
    if [ -f "$d/cpuset.cpus" ]; then
      cat "$(dirname "$d")/cpuset.cpus" >"$d/cpuset.cpus"
      cat "$(dirname "$d")/cpuset.mems" >"$d/cpuset.mems"
    fi
  done
}

# --- up -------------------------------------------------------------------------------------------
up() {
  # The start-up bound counts from here: a cold toolchain build first takes as long as it takes.
  CACHE=$(bash "$HERE/toolchain.sh" | tail -n 1)
  START_DEADLINE=$((SECONDS + TIMEOUT))
  BIN=$CACHE/bin
  mkdir -p "$DIR/log" "$DIR/pids"
  echo "$CACHE" >"$DIR/cache"
  for s in "${SYSCTLS[@]}"; do printf '%s=%s\n' "$s" "$(sysctl -n "$s")"; done >"$DIR/sysctls"
  # Folders made outside $DIR: containerd 1.6 keeps its shims' sockets in /run/containerd/s whatever its
  # state folder; `ip netns` makes /run/netns. Removed again at the end if they were not there before.
  for d in /run/containerd /run/netns; do [ -d "$d" ] || echo "$d"; done >"$DIR/made-dirs"

  log "network namespace $NS, link $HOST_IF $HOST_IP <-> $NODE_IP"
  ip netns add "$NS"
  ip link add "$HOST_IF" type veth peer name eth0 netns "$NS"
  ip addr add "$HOST_IP/30" dev "$HOST_IF"
  ip link set "$HOST_IF" up
  in_ns ip link set lo up
  in_ns ip addr add "$NODE_IP/30" dev eth0
  in_ns ip link set eth0 up
  # Service IPs need a route for locally made connections before kube-proxy's DNAT rewrites them.
  in_ns ip route add "$SERVICE_CIDR" dev eth0
  in_ns sysctl -q -w net.ipv4.ip_forward=1 net.ipv4.conf.all.route_localnet=1

  log "certificates and configuration in $DIR"
  make_pki
  write_configs

  log "etcd"
  start_bg etcd "$BIN/etcd" --name "$NODE" --data-dir "$DIR/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster "$NODE=http://127.0.0.1:2380" --listen-metrics-urls http://127.0.0.1:2381 \
    --quota-backend-bytes 2147483648 --log-level warn
  wait_for etcd 60 in_ns curl -sf http://127.0.0.1:2381/health

  log "kube-apiserver"
  local pki=$DIR/pki
  start_bg kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 --advertise-address="$NODE_IP" --secure-port=6443 \
    --service-cluster-ip-range="$SERVICE_CIDR" --service-node-port-range=30000-32767 \
    --client-ca-file="$pki/ca.crt" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$pki/apiserver-kubelet-client.key" --kubelet-certificate-authority="$pki/ca.crt" \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --authorization-mode=Node,RBAC --anonymous-auth=true \
    --enable-admission-plugins=NodeRestriction,PodSecurity \
    --requestheader-client-ca-file="$pki/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-extra-headers-prefix=X-Remote-Extra- --requestheader-group-headers=X-Remote-Group \
    --requestheader-username-headers=X-Remote-User \
    --proxy-client-cert-file="$pki/front-proxy-client.crt" --proxy-client-key-file="$pki/front-proxy-client.key" \
    --enable-aggregator-routing=true --allow-privileged=false --profiling=false --v=1
  wait_for kube-apiserver 120 kubectl_ get --raw /readyz

  log "kube-controller-manager, kube-scheduler"
  start_bg kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig="$DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$DIR/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
    --root-ca-file="$pki/ca.crt" --service-account-private-key-file="$pki/sa.key" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --cluster-cidr="$POD_CIDR" --allocate-node-cidrs=false --service-cluster-ip-range="$SERVICE_CIDR" \
    --horizontal-pod-autoscaler-sync-period=10s --profiling=false --v=1
  start_bg kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig="$DIR/scheduler.kubeconfig" --authorization-kubeconfig="$DIR/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --profiling=false --v=1

  log "containerd"
  start_bg containerd containerd --config "$DIR/containerd/config.toml" --log-level warn
  wait_for containerd 60 ctr --address "$DIR/containerd.sock" version

  log "images"
  bash "$HERE/images.sh" "$CACHE" "$DIR/containerd.sock"

  log "kubelet, kube-proxy"
  make_cgroup_root
  start_bg kubelet "$BIN/kubelet" --config="$DIR/kubelet/config.yaml" --kubeconfig="$DIR/kubelet.kubeconfig" \
    --root-dir="$DIR/kubelet/root" --cert-dir="$DIR/kubelet/pki" --node-ip="$NODE_IP" \
    --hostname-override="$NODE" --v=1
  start_bg kube-proxy "$BIN/kube-proxy" --config="$DIR/kube-proxy.yaml" --v=1
  wait_for "node $NODE Ready" 120 kubectl_ wait --for=condition=Ready "node/$NODE" --timeout=2s

  log "add-ons: CoreDNS, metrics-server, Traefik"
  sed -e "s#@DNS_IP@#$DNS_IP#g" -e "s#@COREDNS_VERSION@#$COREDNS_VERSION#g" \
    -e "s#@METRICS_SERVER_VERSION@#$METRICS_SERVER_VERSION#g" -e "s#@TRAEFIK_VERSION@#$TRAEFIK_VERSION#g" \
    -e "s#@NODE_IP@#$NODE_IP#g" -e "s#@TRAEFIK_NODEPORT@#$TRAEFIK_NODEPORT#g" \
    <(for f in "$CACHE/traefik-crds.yaml" "$HERE"/addons/*.yaml; do cat "$f"; echo "---"; done) >"$DIR/addons.yaml"
  wait_for "the add-ons applied" 60 kubectl_ apply --server-side -f "$DIR/addons.yaml"
  local left=$((START_DEADLINE - SECONDS))
  [ "$left" -gt 5 ] || die "start-up timed out"
  kubectl_ -n kube-system rollout status deploy/coredns deploy/metrics-server --timeout="${left}s" >&2
  kubectl_ -n traefik rollout status deploy/traefik --timeout="$((START_DEADLINE - SECONDS))s" >&2
  wait_for "the metrics API" 90 kubectl_ get --raw /apis/metrics.k8s.io/v1beta1/nodes

  cat >"$DIR/env" <<EOF
KUBECONFIG=$DIR/admin.kubeconfig
CLUSTER_NODE_IP=$NODE_IP
CLUSTER_HOST_IP=$HOST_IP
CLUSTER_INGRESS_URL=http://$NODE_IP:$TRAEFIK_NODEPORT
CLUSTER_CONTAINERD_SOCKET=$DIR/containerd.sock
CLUSTER_BIN=$BIN
EOF
  log "cluster $NAME is up (Kubernetes $KUBERNETES_VERSION, ingress $NODE_IP:$TRAEFIK_NODEPORT)"
  echo "export KUBECONFIG=$DIR/admin.kubeconfig"
}

# --- down -----------------------------------------------------------------------------------------
stop_pid() { # pidfile
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
}

# Every process whose network namespace is ours (kubelet's containers included).
ns_pids() {
  local target
  target=$(stat -L -c %i "/run/netns/$NS" 2>/dev/null) || return 0
  for p in /proc/[0-9]*; do
    [ "$(stat -L -c %i "$p/ns/net" 2>/dev/null)" = "$target" ] && echo "${p#/proc/}"
  done
  return 0
}

down() {
  [ "$(id -u)" = 0 ] || die "needs root"
  log "stopping cluster $NAME"
  if [ -S "$DIR/containerd.sock" ] && [ -f "$DIR/cache" ]; then
    # Pods first, so their shims exit and containerd unmounts their root filesystems. (Left by a run that
    # was killed, the socket may have no containerd behind it any more: then there is nothing to ask.)
    local crt=(ctr --address "$DIR/containerd.sock" -n k8s.io)
    for f in kubelet kube-proxy; do [ -f "$DIR/pids/$f" ] && stop_pid "$DIR/pids/$f"; done
    { timeout 60 "${crt[@]}" tasks ls -q 2>/dev/null || true; } | while read -r t; do
      timeout 20 "${crt[@]}" tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
    done
    sleep 1
    { timeout 60 "${crt[@]}" tasks ls -q 2>/dev/null || true; } | while read -r t; do
      timeout 20 "${crt[@]}" tasks delete -f "$t" >/dev/null 2>&1 || true
    done
    { timeout 60 "${crt[@]}" containers ls -q 2>/dev/null || true; } | while read -r c; do
      timeout 20 "${crt[@]}" containers delete "$c" >/dev/null 2>&1 || true
    done
  fi
  for f in "$DIR"/pids/*; do [ -f "$f" ] && stop_pid "$f"; done
  # Then whatever still lives in the namespace (shims, containers), and the daemons' own processes.
  local deadline=$((SECONDS + 30)) left
  while :; do
    left=$(
      ns_pids
      for f in "$DIR"/pids/*; do
        [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"
      done
      true
    )
    [ -z "$left" ] && break
    if [ "$SECONDS" -ge "$deadline" ]; then
      # shellcheck disable=SC2086
      kill -KILL $left 2>/dev/null || true
    else
      # shellcheck disable=SC2086
      kill -TERM $left 2>/dev/null || true
    fi
    [ "$SECONDS" -ge $((deadline + 10)) ] && { log "processes left: $left"; break; }
    sleep 1
  done
  # containerd-shim-runc-v2 processes of our containerd run in the host's namespace: find them by address.
  for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $DIR/containerd.sock" || true); do kill -KILL "$p" 2>/dev/null || true; done
  # Mounts under the state folder (container root filesystems, volumes, pod network namespaces), deepest first.
  if [ -n "$DIR" ] && [ -d "$DIR" ]; then
    awk -v d="$DIR/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
  fi
  ip link del "$HOST_IF" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  # Any process still in the cluster's cgroups (a container whose shim died), then the cgroup tree itself,
  # in every hierarchy, deepest first.
  local d procs
  for d in $(cgroup_dirs); do
    [ -d "$d" ] || continue
    procs=$({ find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null || true; } | sort -u)
    # shellcheck disable=SC2086
    [ -n "$procs" ] && kill -KILL $procs 2>/dev/null || true
  done
  [ -n "${procs:-}" ] && sleep 1
  for d in $(cgroup_dirs); do
    [ -d "$d" ] || continue
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  if [ -f "$DIR/made-dirs" ]; then
    while IFS= read -r d; do
      [ -d "$d" ] || continue
      find "$d" -mindepth 1 -depth -type d -empty -delete 2>/dev/null || true
      if [ -z "$(ls -A "$d")" ]; then
        # `ip netns` bind-mounts /run/netns onto itself the first time it is used.
        while mountpoint -q "$d"; do umount "$d" || break; done
        rmdir "$d" 2>/dev/null || true
      fi
    done <"$DIR/made-dirs"
  fi
  if [ -f "$DIR/sysctls" ]; then
    while IFS= read -r kv; do sysctl -q -w "$kv" || true; done <"$DIR/sysctls"
  fi
  if [ -n "$DIR" ] && [ -d "$DIR" ]; then
    rm -rf --one-file-system "$DIR" 2>/dev/null || rm -rf "$DIR"
  fi
  log "cluster $NAME stopped"
}

status() {
  if [ -e "/run/netns/$NS" ]; then
    echo "cluster $NAME: running (state in $DIR); export KUBECONFIG=$DIR/admin.kubeconfig"
  else
    echo "cluster $NAME: not running"
    return 1
  fi
}

on_failed_start() {
  local rc=$?
  trap - EXIT INT TERM
  [ "$rc" = 0 ] && return 0
  log "start-up failed; the logs are kept in $DIR.failed-logs; stopping"
  rm -rf "$DIR.failed-logs"
  cp -r "$DIR/log" "$DIR.failed-logs" 2>/dev/null || true
  down || true
  exit "$rc"
}

case ${1:-} in
  up)
    [ "$(id -u)" = 0 ] || die "needs root (network namespace, containerd, kubelet)"
    if [ -e "/run/netns/$NS" ] || [ -d "$DIR/pids" ]; then
      die "cluster $NAME already exists (state in $DIR); run: $0 down"
    fi
    trap on_failed_start EXIT
    trap 'exit 130' INT TERM
    up
    trap - EXIT INT TERM
    ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up|down|status" ;;
esac
