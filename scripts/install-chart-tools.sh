#!/usr/bin/env bash
# Installs the chart tools that build from Go modules (helm-docs: charts/mcstatbot/README.md from the values'
# `# --` comments), pinned, into a cache outside the checkout so that a fresh clone on the same machine (CI)
# finds them: ${MCSTATBOT_CACHE:-$HOME/.cache/mcstatbot}/helm-docs-<version>/bin/helm-docs.
# Idempotent: nothing is built when the pinned binary is already there. The build runs at `nice -n 19`.
set -euo pipefail

HELM_DOCS_VERSION=v1.14.2
CACHE=${MCSTATBOT_CACHE:-$HOME/.cache/mcstatbot}
BIN=$CACHE/helm-docs-$HELM_DOCS_VERSION/bin

if [ -x "$BIN/helm-docs" ] && "$BIN/helm-docs" --version 2>/dev/null | grep -q "${HELM_DOCS_VERSION#v}"; then
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "install-chart-tools: go is needed to build helm-docs" >&2; exit 1; }
printf '\033[1m==> %s\033[0m\n' "helm-docs $HELM_DOCS_VERSION (go install, into $BIN)"
mkdir -p "$BIN"
GOBIN=$BIN GOFLAGS=-buildvcs=false nice -n 19 go install \
  -ldflags "-X main.version=${HELM_DOCS_VERSION#v}" \
  "github.com/norwoodj/helm-docs/cmd/helm-docs@$HELM_DOCS_VERSION"
