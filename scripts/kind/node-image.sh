#!/usr/bin/env bash
# Builds the kind node image without pulling anything, and caches it as a `docker save` archive:
#   ${MCSTATBOT_CACHE:-$HOME/.cache/mcstatbot}/kind/<key>/node/<image name>.tar
# (<key> as scripts/kind/toolchain.sh's; the image name carries a hash of every input, so a changed input
# builds a new image). Prints the image name, then the archive's path, on its last two lines of stdout.
#
# 1. The base image, as kind's images/base/Dockerfile makes it: Debian (debootstrap, DEBIAN_SUITE of
#    scripts/cluster/versions.env) with the packages kind's base image carries, Debian's containerd, runc and
#    CNI plugins among them, crictl from the kind toolchain, and kind's own base-image files (from the
#    sigs.k8s.io/kind module), imported with `docker import`.
# 2. A Kubernetes release tarball as kind's `--type file` build reads it: kubeadm, kubelet and kubectl of the
#    real-cluster toolchain (scripts/cluster/toolchain.sh), the images of kube-apiserver, -controller-manager,
#    -scheduler and -proxy made from its binaries, and in kube-proxy's archive every other image the node
#    needs, tagged as kubeadm and kind name them: etcd, CoreDNS (with the `forward` plugin kubeadm's Corefile
#    uses), pause, kindnetd (a stand-in: scripts/kind/kindnetd/main.go says why) and kind's local-path
#    provisioner and its helper. kind loads what the tarball holds and pulls only what it lacks: nothing.
# 3. `kind build node-image --type file` from those two, its build container run privileged (a `docker`
#    shim on PATH adds --privileged to kind's `kind-build-*` container: containerd runs inside it).
#
# The docker engine is DOCKER_HOST's, or, when DOCKER_HOST is unset, a private dockerd started for the build
# (scripts/kind/dockerd.sh) and stopped after it.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$HERE/versions.env"
# shellcheck source=../cluster/versions.env
source "$HERE/../cluster/versions.env"
MIRROR=${MCSTATBOT_DEBIAN_MIRROR:-http://deb.debian.org/debian}

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

CLUSTER=$(bash "$HERE/../cluster/toolchain.sh" | tail -1)
KBIN=$(bash "$HERE/toolchain.sh" | tail -1)
CACHE=$(dirname "$KBIN")
CACHE_ROOT=$(dirname "$CACHE")
BIN=$KBIN
NODE="$CACHE/node"
mkdir -p "$NODE"

# Every input of the image: this script, its helpers, the stand-in's source, both versions files.
INPUTS=$(cat "$0" "$HERE/kindnetd/main.go" "$HERE/dockerd.sh" "$HERE/../cluster/archive.sh" "$HERE/../cluster/runc-wrapper.sh" \
  "$HERE/versions.env" "$HERE/../cluster/versions.env" | sha256sum | cut -c1-12)
IMAGE="mcstatbot.local/kind-node:$KUBERNETES_VERSION-$INPUTS"
ARCHIVE="$NODE/kind-node-$KUBERNETES_VERSION-$INPUTS.tar"
if [ -f "$ARCHIVE" ]; then
  echo "$IMAGE"
  echo "$ARCHIVE"
  exit 0
fi

# The Go builds and the image build take the kind cache's lock (one build at a time). They share the
# real-cluster toolchain's build cache: CoreDNS's and client-go's packages are compiled there already.
WRAPPER_PREFIX=kind-build
export GOCACHE="${GOCACHE:-$(dirname "$(dirname "$CLUSTER")")/go-build}"
# shellcheck source=../cluster/go-build.sh
source "$HERE/../cluster/go-build.sh"
# shellcheck source=../cluster/archive.sh
source "$HERE/../cluster/archive.sh"
if [ -f "$ARCHIVE" ]; then # built by another run while this one waited for the lock
  echo "$IMAGE"
  echo "$ARCHIVE"
  exit 0
fi
START=$(date +%s)

# --- Go builds: CoreDNS for kubeadm's Corefile, the kindnetd stand-in, local-path-provisioner -------------
KIND_COREDNS_PLUGINS="errors health ready kubernetes metrics forward cache loop reload loadbalance"
if [ ! -x "$BIN/coredns" ]; then
  C="$CACHE/src/coredns"
  wrapper "$C" "github.com/coredns/coredns@$COREDNS_VERSION"
  {
    echo "// Written by scripts/kind/node-image.sh: CoreDNS with the plugins kubeadm's Corefile uses."
    echo "package main"
    echo
    echo "import ("
    echo "	\"github.com/coredns/coredns/coremain\""
    echo
    for plugin in $KIND_COREDNS_PLUGINS; do echo "	_ \"github.com/coredns/coredns/plugin/$plugin\""; done
    echo ")"
    echo
    echo "func main() { coremain.Run() }"
  } >"$C/main.go"
  go_get "$C" "github.com/coredns/coredns@$COREDNS_VERSION"
  build coredns "$C" . "-X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION"
fi
if [ ! -x "$BIN/kindnetd" ] || ! cmp -s "$HERE/kindnetd/main.go" "$CACHE/src/kindnetd/main.go"; then
  rm -f "$BIN/kindnetd"
  K="$CACHE/src/kindnetd"
  # client-go at the Kubernetes build's staging version, netlink at the version Kubernetes requires.
  netlink=$(cd "$CACHE/src" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])' | xargs awk '$1 == "github.com/vishvananda/netlink" {print $2}')
  wrapper "$K" "k8s.io/client-go@$KUBERNETES_STAGING_VERSION"
  cp "$HERE/kindnetd/main.go" "$K/main.go"
  go_get "$K" "k8s.io/client-go@$KUBERNETES_STAGING_VERSION" "k8s.io/api@$KUBERNETES_STAGING_VERSION" \
    "k8s.io/apimachinery@$KUBERNETES_STAGING_VERSION" "github.com/vishvananda/netlink@$netlink"
  build kindnetd "$K" .
fi
if [ ! -x "$BIN/local-path-provisioner" ]; then
  L="$CACHE/src/local-path-provisioner"
  wrapper "$L" "github.com/rancher/local-path-provisioner@$LOCAL_PATH_PROVISIONER_VERSION"
  go_get "$L" "github.com/rancher/local-path-provisioner@$LOCAL_PATH_PROVISIONER_VERSION"
  build local-path-provisioner "$L" github.com/rancher/local-path-provisioner \
    "-X main.VERSION=$LOCAL_PATH_PROVISIONER_VERSION"
fi

# --- Root filesystems (debootstrap), cached by their package lists --------------------------------------
# debootstrap_cached NAME VARIANT PACKAGES: $NODE/NAME-<hash>, made once.
debootstrap_cached() {
  local name=$1 variant=$2 packages=$3 dir start
  dir="$NODE/$name-$(printf '%s %s %s %s' "$DEBIAN_SUITE" "$variant" "$packages" "$MIRROR" | sha256sum | cut -c1-12)"
  if [ ! -d "$dir" ]; then
    log "debootstrap $name ($DEBIAN_SUITE: $packages)"
    start=$(date +%s)
    rm -rf "$dir.partial"
    nice -n 19 debootstrap --variant="$variant" --include="$packages" "$DEBIAN_SUITE" "$dir.partial" "$MIRROR" \
      >"$NODE/$name-debootstrap.log" 2>&1 || { tail -20 "$NODE/$name-debootstrap.log" >&2; exit 1; }
    rm -rf "$dir.partial"/var/cache/apt/archives/*.deb "$dir.partial"/var/lib/apt/lists/*
    mv "$dir.partial" "$dir"
    printf '%s-debootstrap %ss\n' "$name" "$(($(date +%s) - start))" >>"$TIMES"
  fi
  echo "$dir"
}
# kind's base image packages (images/base/Dockerfile), with Debian's containerd, runc and CNI plugins for
# the ones kind compiles (fuse-overlayfs, for rootless nodes only, left out), and python3 (its json module) for the runc wrapper.
NODE_ROOTFS=$(debootstrap_cached node-rootfs minbase \
  systemd,systemd-sysv,dbus,containerd,runc,containernetworking-plugins,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,e2fsprogs,bash,ca-certificates,curl,jq,procps,socat,python3)
# kube-proxy's (iptables, conntrack) and local-path-provisioner's helper's (a shell, mkdir, rm) root.
NETBASE_ROOTFS=$(debootstrap_cached netbase-rootfs minbase iptables,nftables,conntrack,kmod,iproute2)

# --- The engine -----------------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mcsb-kind-node-XXXXXX")
ENGINE=""
cleanup() {
  if [ -n "$ENGINE" ]; then bash "$HERE/dockerd.sh" stop "$ENGINE" || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
if [ -z "${DOCKER_HOST:-}" ]; then
  ENGINE=$(mktemp -d /tmp/mcsb-docker-XXXXXX)
  DOCKER_HOST=$(bash "$HERE/dockerd.sh" start "$ENGINE")
fi
export DOCKER_HOST
# Debian's docker client (docker.io, the dockerd's own version) where it is, else the one on PATH.
DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=$(command -v docker)
# kind's build container runs privileged: containerd inside it mounts the images it imports.
mkdir -p "$WORK/shim"
cat >"$WORK/shim/docker" <<SH
#!/bin/sh
# Written by scripts/kind/node-image.sh: kind's node-image build container runs privileged.
if [ "\$1" = run ]; then
  for a in "\$@"; do
    case "\$a" in --name=kind-build-*) shift; exec "$DOCKER" run --privileged "\$@" ;; esac
  done
fi
exec "$DOCKER" "\$@"
SH
chmod 0755 "$WORK/shim/docker"

# --- 1. The base image ------------------------------------------------------------------------------------
log "base image"
s=$(date +%s)
KIND_SRC=$(cd "$CACHE/src/kind" && go list -m -f '{{.Dir}}' sigs.k8s.io/kind)
FILES="$KIND_SRC/images/base/files"
R="$WORK/base"
cp -a "$NODE_ROOTFS" "$R"
install -m 0755 "$FILES"/usr/local/bin/* "$R/usr/local/bin/"
mkdir -p "$R/kind/bin" "$R/etc/containerd" "$R/etc/default" "$R/etc/sysctl.d" "$R/etc/systemd/system/kubelet.service.d" "$R/LICENSES"
cp -r "$FILES/kind/." "$R/kind/"
chmod 0755 "$R/kind" "$R/kind/bin" "$R"/kind/bin/*
install -m 0644 "$FILES"/etc/crictl.yaml "$R/etc/"
install -m 0644 "$FILES"/etc/containerd/* "$R/etc/containerd/"
install -m 0644 "$FILES"/etc/default/* "$R/etc/default/"
install -m 0644 "$FILES"/etc/sysctl.d/* "$R/etc/sysctl.d/"
install -m 0644 "$FILES"/etc/systemd/system/*.service "$FILES"/etc/systemd/system/*.slice "$R/etc/systemd/system/"
install -m 0644 "$FILES"/etc/systemd/system/kubelet.service.d/* "$R/etc/systemd/system/kubelet.service.d/"
install -m 0644 "$FILES"/LICENSES/* "$R/LICENSES/"
# Debian installs the binaries in /usr/bin and the plugins in /usr/lib/cni; kind's units and containerd's
# config look in /usr/local/bin and /opt/cni/bin.
for b in containerd containerd-shim-runc-v2; do ln -sf "/usr/bin/$b" "$R/usr/local/bin/$b"; done
# kind's image import waits for containerd with `ctr info` (containerd 2's); Debian's ctr 1.6 has `version`.
printf '%s\n' '#!/bin/sh' '# Written by scripts/kind/node-image.sh: `ctr info` as containerd 1.6 can answer it.' \
  '[ "$1" = info ] && exec /usr/bin/ctr version' 'exec /usr/bin/ctr "$@"' >"$R/usr/local/bin/ctr"
chmod 0755 "$R/usr/local/bin/ctr"
# runc through the runc wrapper of the real cluster (scripts/cluster/runc-wrapper.sh says why), first on PATH.
install -m 0755 "$HERE/../cluster/runc-wrapper.sh" "$R/usr/local/sbin/runc"
mkdir -p "$R/opt/cni/bin"
for p in host-local loopback ptp portmap; do cp -a "$R/usr/lib/cni/$p" "$R/opt/cni/bin/"; done
install -m 0755 "$KBIN/crictl" "$R/usr/local/bin/crictl"
# The sandbox image: the pause this build makes.
sed -i "s#sandbox_image = \"registry.k8s.io/pause:[^\"]*\"#sandbox_image = \"registry.k8s.io/pause:$PAUSE_VERSION\"#" "$R/etc/containerd/config.toml"
grep -q "sandbox_image = \"registry.k8s.io/pause:$PAUSE_VERSION\"" "$R/etc/containerd/config.toml"
# kind's hook that mounts the node's product files, in the default spec of this containerd (the root
# filesystem's ctr and jq, not the host's).
chroot "$R" sh -c 'ctr oci spec |
  jq ".hooks.createContainer[.hooks.createContainer | length] |= . + {\"path\": \"/kind/bin/mount-product-files.sh\"}" |
  jq "del(.process.rlimits)"' >"$R/etc/containerd/cri-base.json"
grep -q mount-product-files "$R/etc/containerd/cri-base.json"
# The Dockerfile's systemd changes.
find "$R/lib/systemd/system/sysinit.target.wants/" -name "systemd-tmpfiles-setup.service" -delete
rm -f "$R"/lib/systemd/system/multi-user.target.wants/* "$R"/etc/systemd/system/*.wants/* \
  "$R"/lib/systemd/system/local-fs.target.wants/* "$R"/lib/systemd/system/sockets.target.wants/*udev* \
  "$R"/lib/systemd/system/sockets.target.wants/*initctl* "$R"/lib/systemd/system/basic.target.wants/*
echo "ReadKMsg=no" >>"$R/etc/systemd/journald.conf"
ln -sf /usr/lib/systemd/systemd "$R/sbin/init"
chroot "$R" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
chroot "$R" systemctl mask systemd-binfmt.service >/dev/null 2>&1
mkdir -p "$R/etc/kubernetes/manifests"
BASE="mcstatbot.local/kind-base:$INPUTS"
tar --numeric-owner -C "$R" -c . | "$DOCKER" import - "$BASE-rootfs" >/dev/null
rm -rf "$R"
# The image settings of kind's base image (`docker import --change` knows no STOPSIGNAL).
mkdir -p "$WORK/base-context"
printf '%s\n' "FROM $BASE-rootfs" "ENV container=docker" "STOPSIGNAL SIGRTMIN+3" \
  'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' >"$WORK/base-context/Dockerfile"
DOCKER_BUILDKIT=1 "$DOCKER" build -q -t "$BASE" "$WORK/base-context" >/dev/null
"$DOCKER" image rm "$BASE-rootfs" >/dev/null
printf 'base-image %ss\n' "$(($(date +%s) - s))" >>"$TIMES"

# --- 2. The release tarball -------------------------------------------------------------------------------
log "component images and the release tarball"
s=$(date +%s)
T="$WORK/tarball/kubernetes"
mkdir -p "$T/server/bin" "$WORK/images"
echo "$KUBERNETES_VERSION" >"$T/version"
for b in kubeadm kubelet kubectl; do install -m 0755 "$CLUSTER/bin/$b" "$T/server/bin/$b"; done
# The images kubeadm asks for, by name (etcd's and CoreDNS's tags are kubeadm's, whatever built them).
mapfile -t wanted < <("$CLUSTER/bin/kubeadm" config images list --kubernetes-version "$KUBERNETES_VERSION")
image_named() {
  local i
  for i in "${wanted[@]}"; do [[ $i == */$1:* ]] && { echo "$i"; return 0; }; done
  echo "kubeadm lists no $1 image: ${wanted[*]}" >&2
  return 1
}
# binary_image TAG ROOTFS BINARY DEST USER ENTRYPOINT_JSON OUT: ROOTFS (empty for none) plus BINARY at DEST.
binary_image() {
  local tag=$1 rootfs=$2 binary=$3 dest=$4 user=$5 entry=$6 out=$7 root
  root="$WORK/root"
  rm -rf "$root"
  if [ -n "$rootfs" ]; then cp -a "$rootfs" "$root"; else mkdir -p "$root"; fi
  install -D -m 0755 "$binary" "$root$dest"
  mkdir -p -m 1777 "$root/tmp"
  archive "$tag" "$root" "$out" \
    "{\"User\":\"$user\",\"Entrypoint\":$entry,\"Env\":[\"PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin\"]}"
  rm -rf "$root"
}
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  binary_image "$(image_named "$c")" "" "$CLUSTER/bin/$c" "/usr/local/bin/$c" 0:0 "[\"/usr/local/bin/$c\"]" \
    "$T/server/bin/$c.tar"
done
I="$WORK/images"
binary_image "$(image_named kube-proxy)" "$NETBASE_ROOTFS" "$CLUSTER/bin/kube-proxy" /usr/local/bin/kube-proxy 0:0 \
  '["/usr/local/bin/kube-proxy"]' "$I/kube-proxy.tar"
binary_image "$(image_named etcd)" "" "$CLUSTER/bin/etcd" /usr/local/bin/etcd 0:0 '["/usr/local/bin/etcd"]' "$I/etcd.tar"
# Root in the container, as kubeadm's CoreDNS Deployment adds NET_BIND_SERVICE for port 53 (the upstream
# image's file capability does the same for its non-root user).
binary_image "$(image_named coredns)" "" "$BIN/coredns" /coredns 0:0 '["/coredns"]' "$I/coredns.tar"
# The real-cluster toolchain's pause (its build/pause/linux/pause.c), retagged.
mkdir -p "$WORK/pause/root"
tar -C "$WORK/pause" -xf "$CLUSTER/images/pause.tar"
tar -C "$WORK/pause/root" -xf "$(find "$WORK/pause" -name layer.tar | head -1)"
archive "registry.k8s.io/pause:$PAUSE_VERSION" "$WORK/pause/root" "$I/pause.tar" \
  '{"User":"65535:65535","Entrypoint":["/pause"]}'
rm -rf "$WORK/pause"
kind_image() { sed -n "s/^const $1 = \"\\(.*\\)\"$/\\1/p" "$KIND_SRC/pkg/build/nodeimage/$2"; }
binary_image "$(kind_image kindnetdImage const_cni.go)" "" "$BIN/kindnetd" /bin/kindnetd 0:0 '["/bin/kindnetd"]' \
  "$I/kindnetd.tar"
binary_image "$(kind_image storageProvisionerImage const_storage.go)" "" "$BIN/local-path-provisioner" \
  /usr/local/bin/local-path-provisioner 0:0 '["/usr/local/bin/local-path-provisioner"]' "$I/local-path-provisioner.tar"
helper=$(kind_image storageHelperImage const_storage.go)
[ -n "$helper" ] || { echo "no local-path helper image in kind $KIND_VERSION's sources" >&2; exit 1; }
archive "$helper" "$NETBASE_ROOTFS" "$I/local-path-helper.tar" \
  '{"User":"0:0","Env":["PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin"],"Cmd":["/bin/sh"]}'
bundle "$T/server/bin/kube-proxy.tar" "$I/kube-proxy.tar" "$I/etcd.tar" "$I/coredns.tar" "$I/pause.tar" \
  "$I/kindnetd.tar" "$I/local-path-provisioner.tar" "$I/local-path-helper.tar"
rm -rf "$I"
tar -C "$WORK/tarball" -czf "$WORK/kubernetes-server-linux-amd64.tar.gz" kubernetes
rm -rf "$WORK/tarball"
printf 'component-images+tarball %ss\n' "$(($(date +%s) - s))" >>"$TIMES"

# --- 3. kind build node-image -----------------------------------------------------------------------------
log "kind build node-image $IMAGE"
s=$(date +%s)
PATH="$WORK/shim:$PATH" "$KBIN/kind" build node-image --type file --base-image "$BASE" --image "$IMAGE" \
  "$WORK/kubernetes-server-linux-amd64.tar.gz" >&2
"$DOCKER" image rm "$BASE" >/dev/null
"$DOCKER" save -o "$ARCHIVE.partial" "$IMAGE"
mv "$ARCHIVE.partial" "$ARCHIVE"
printf 'node-image %ss\n' "$(($(date +%s) - s))" >>"$TIMES"
log "kind node image $IMAGE in $(($(date +%s) - START))s"
echo "$IMAGE"
echo "$ARCHIVE"
