#!/usr/bin/env bash
# Builds the OpenTelemetry Collector of scripts/kind/otelcol/builder.yaml from Go modules with the
# collector's own builder (ocb, go.opentelemetry.io/collector/cmd/builder at the same version), into a cache
# folder outside the checkout, and does nothing when the binary is there already:
#   ${MCSTATBOT_CACHE:-$HOME/.cache/mcstatbot}/kind/otelcol-<version>-<hash>/bin/otelcol-mcstatbot
# (<hash> of this script and builder.yaml). About 1.5 minutes cold on 2 cores. tests/kind/test_readme_kind.py
# runs it as the chart's collector image on kind (nothing can be pulled here). Prints the binary's path on
# its last line of stdout.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CONFIG="$HERE/otelcol/builder.yaml"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

command -v go >/dev/null 2>&1 || { echo "collector.sh: Go is needed (go1.26 or newer on PATH)" >&2; exit 1; }

VERSION=$(grep -oE 'otlpreceiver v[0-9.]+' "$CONFIG" | cut -d' ' -f2)
KEY="otelcol-$VERSION-$(cat "$0" "$CONFIG" | sha256sum | cut -c1-12)"
CACHE_ROOT="${MCSTATBOT_CACHE:-$HOME/.cache/mcstatbot}/kind"
CACHE="$CACHE_ROOT/$KEY" BIN="$CACHE_ROOT/$KEY/bin"
mkdir -p "$BIN" "$CACHE/src"
# The lock and the Go settings (static binaries, the shared build cache) of the cluster toolchain.
# shellcheck source=../cluster/go-build.sh
source "$HERE/../cluster/go-build.sh"

if [ ! -x "$BIN/otelcol-mcstatbot" ]; then
  start=$(date +%s)
  if [ ! -x "$CACHE/src/builder" ]; then
    log "building the collector builder (go.opentelemetry.io/collector/cmd/builder@$VERSION)"
    GOBIN="$CACHE/src" nice -n 19 go install "go.opentelemetry.io/collector/cmd/builder@$VERSION"
  fi
  log "building the collector ($CONFIG)"
  rm -rf "$CACHE/src/out"
  (cd "$CACHE/src" && cp "$CONFIG" builder.yaml && nice -n 19 ./builder --config builder.yaml >&2)
  "$CACHE/src/out/otelcol-mcstatbot" components >/dev/null
  mv "$CACHE/src/out/otelcol-mcstatbot" "$BIN/otelcol-mcstatbot"
  printf 'otelcol-mcstatbot %ss\n' "$(($(date +%s) - start))" >>"$TIMES"
  log "collector built in $(($(date +%s) - start))s"
fi
echo "$BIN/otelcol-mcstatbot"
