#!/usr/bin/env bash
# Writes charts/mcstatbot/README.md with helm-docs (from values.yaml's `# --` comments and README.md.gotmpl).
# `bash tests/chart/render-readme.sh [CHART_DIR]`; tests/chart/test_readme.py runs it on a copy of the chart
# and fails when the committed README differs. helm-docs comes from scripts/install-chart-tools.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
CHART=${1:-charts/mcstatbot}
VERSION=$(sed -n 's/^HELM_DOCS_VERSION=//p' scripts/install-chart-tools.sh)
HELM_DOCS=${MCSTATBOT_CACHE:-$HOME/.cache/mcstatbot}/helm-docs-$VERSION/bin/helm-docs
if [ ! -x "$HELM_DOCS" ]; then
  echo "helm-docs $VERSION is not installed: run \`bash scripts/install-chart-tools.sh\`" >&2
  exit 1
fi
"$HELM_DOCS" --log-level warning --chart-search-root "$(dirname "$CHART")" --chart-to-generate "$CHART" \
  --sort-values-order file --skip-version-footer
