#!/usr/bin/env bash
# Builds the kind toolchain from Go modules, pinned in scripts/kind/versions.env, into a cache folder outside
# the checkout, and does nothing when the binaries are already there:
#   ${MCSTATBOT_CACHE:-$HOME/.cache/mcstatbot}/kind/<key>/bin/{kind,crictl,skaffold}
# where <key> is derived from versions.env (a fresh clone on the same machine finds the same folder).
# Each build runs in a wrapper module (a go.mod that requires the tool's module and carries the replace and
# exclude lines a build from the module proxy needs), under `nice -n 19`; the cold time of each is written to
# build-times.txt. Prints the bin folder on its last line of stdout.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$HERE/versions.env"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

command -v go >/dev/null 2>&1 || { echo "toolchain.sh: Go is needed (go1.26 or newer on PATH)" >&2; exit 1; }

KEY="kind-${KIND_VERSION}-$(grep -v '^#' "$HERE/versions.env" | sha256sum | cut -c1-12)"
CACHE_ROOT="${MCSTATBOT_CACHE:-$HOME/.cache/mcstatbot}/kind"
CACHE="$CACHE_ROOT/$KEY"
BIN="$CACHE/bin"
mkdir -p "$BIN" "$CACHE/src"

# The lock, the Go settings and the wrapper/go_get/build helpers of the cluster toolchain.
WRAPPER_PREFIX=kind-build
# shellcheck source=../cluster/go-build.sh
source "$HERE/../cluster/go-build.sh"

# kind_build NAME PKG@VERSION [LDFLAGS]: resolve PKG's requirements at its module's VERSION (never a newer
# one) in the wrapper module src/NAME, then build PKG into $BIN/NAME.
kind_build() {
  local name=$1 pkg=${2%@*} version=${2#*@} ldflags=${3:-}
  [ -x "$BIN/$name" ] && return 0
  go_get "$CACHE/src/$name" "$pkg@$version"
  build "$name" "$CACHE/src/$name" "$pkg" "$ldflags"
}

wrapper "$CACHE/src/kind" "sigs.k8s.io/kind@$KIND_VERSION"
kind_build kind "sigs.k8s.io/kind@$KIND_VERSION"

wrapper "$CACHE/src/crictl" "sigs.k8s.io/cri-tools@$CRICTL_VERSION"
kind_build crictl "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION"

k=$SKAFFOLD_K8S_VERSION
wrapper "$CACHE/src/skaffold" "github.com/GoogleContainerTools/skaffold/v2@$SKAFFOLD_VERSION" \
  "exclude github.com/karrick/godirwalk v1.17.0" \
  "replace github.com/alessio/shellescape => github.com/alessio/shellescape v1.4.2" \
  "replace github.com/imdario/mergo => github.com/imdario/mergo v0.3.16" \
  "replace github.com/buildpacks/lifecycle => github.com/buildpacks/lifecycle v0.20.5" \
  "replace github.com/buildpacks/pack => github.com/buildpacks/pack v0.38.2" \
  "replace github.com/buildpacks/imgutil => github.com/buildpacks/imgutil v0.0.0-20250909162057-9db16db815e3" \
  "replace github.com/google/go-containerregistry => github.com/google/go-containerregistry v0.21.2" \
  "replace github.com/dprotaso/go-yit => github.com/dprotaso/go-yit v0.0.0-20240618133044-5a0af90af097" \
  "replace k8s.io/apimachinery => k8s.io/apimachinery $k" \
  "replace k8s.io/api => k8s.io/api $k" \
  "replace k8s.io/client-go => k8s.io/client-go $k" \
  "replace k8s.io/kubectl => k8s.io/kubectl $k" \
  "replace k8s.io/kube-openapi => k8s.io/kube-openapi v0.0.0-20250628140032-d90c4fd18f59"
kind_build skaffold "github.com/GoogleContainerTools/skaffold/v2/cmd/skaffold@$SKAFFOLD_VERSION" \
  "-X github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version.version=$SKAFFOLD_VERSION"

# The pins held: each binary reports the version it was asked for.
kind_v=$("$BIN/kind" version)
crictl_v=$("$BIN/crictl" --version)
skaffold_v=$("$BIN/skaffold" version)
[[ $kind_v == "kind $KIND_VERSION "* ]] || { echo "kind is not $KIND_VERSION: $kind_v" >&2; exit 1; }
[ "$crictl_v" = "crictl version $CRICTL_VERSION" ] || { echo "crictl is not $CRICTL_VERSION: $crictl_v" >&2; exit 1; }
[ "$skaffold_v" = "$SKAFFOLD_VERSION" ] || { echo "skaffold is not $SKAFFOLD_VERSION: $skaffold_v" >&2; exit 1; }
printf '%s\n' "$kind_v" "$crictl_v" "$skaffold_v" >&2
echo "$BIN"
