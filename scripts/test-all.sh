#!/usr/bin/env bash
# `make test`: install what the suite needs, lint, and run every test, with the cluster toolchain's build
# overlapping the tests that do not need it.
#
# On a machine whose cache is cold, the local Kubernetes cluster's binaries (scripts/cluster/toolchain.sh)
# take most of the build time; kind, crictl and skaffold (scripts/kind/toolchain.sh) build beside them, and
# the kind node image (scripts/kind/node-image.sh) and the OpenTelemetry Collector for kind
# (scripts/kind/collector.sh) after both. They
# are only needed by tests/cluster and tests/kind, so they build in the
# background at `nice -n 19` (the tests keep the CPU they ask for) while the rest of the set-up, lint and the
# rest of the suite run;
# then tests/cluster runs once the build is done. Warm, the build takes seconds and nothing changes.
# MCSTATBOT_SKIP_CLUSTER=1 leaves the build out (tests/cluster then fails: it needs the cluster).
# Extra pytest arguments: PYTEST_ARGS.
set -uo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-uv}
LOGS=test-logs
mkdir -p "$LOGS"

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }
elapsed() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
started=$(date +%s)

build_pid=
if [ "${MCSTATBOT_SKIP_CLUSTER:-0}" != 1 ]; then
  log "cluster toolchain: building in the background (log: $LOGS/cluster-toolchain.log)"
  # Its own process group (setsid), so that an interrupted run stops the whole build.
  # The kind toolchain builds beside it (its module downloads overlap the cluster's compiles).
  setsid bash -c 'set -eo pipefail
    bash scripts/kind/toolchain.sh >/dev/null &
    kind=$!
    cache=$(bash scripts/cluster/toolchain.sh | tail -n 1)
    bash scripts/cluster/images.sh "$cache"
    wait "$kind"
    bash scripts/kind/node-image.sh >/dev/null
    bash scripts/kind/collector.sh >/dev/null' >"$LOGS/cluster-toolchain.log" 2>&1 &
  build_pid=$!
fi
trap '[ -n "$build_pid" ] && kill -- "-$build_pid" 2>/dev/null' EXIT

# The rest of the set-up meanwhile (its apt steps and the build's take turns: see APT_LOCK there).
MCSTATBOT_SKIP_CLUSTER=1 bash scripts/install-test-deps.sh || exit 1

log "lint"
$UV run ruff check . && $UV run ruff format --check . && $UV run mypy || exit 1

# shellcheck disable=SC2086  # PYTEST_ARGS is a list of words
log "pytest: everything but the cluster tests"
$UV run pytest --ignore=tests/cluster --ignore=tests/kind ${PYTEST_ARGS:-} 2>&1 | tee "$LOGS/suite.log"
suite=${PIPESTATUS[0]}

if [ -n "$build_pid" ]; then
  log "waiting for the cluster toolchain ($(elapsed $(($(date +%s) - started))) so far)"
  if ! wait "$build_pid"; then
    build_pid=
    tail -n 40 "$LOGS/cluster-toolchain.log"
    log "the cluster toolchain failed to build (whole log: $LOGS/cluster-toolchain.log)"
    exit 1
  fi
  build_pid=
  log "cluster toolchain ready ($(elapsed $(($(date +%s) - started))) so far)"
fi

log "pytest: the cluster tests"
# shellcheck disable=SC2086
$UV run pytest tests/cluster tests/kind ${PYTEST_ARGS:-} 2>&1 | tee "$LOGS/cluster.log"
cluster=${PIPESTATUS[0]}

# The failures of both parts once more at the end, where a CI log's tail shows them.
if [ "$suite" != 0 ] || [ "$cluster" != 0 ]; then
  log "what failed (whole output: $LOGS/suite.log, $LOGS/cluster.log)"
  grep -hE '^(FAILED|ERROR) |^=+ .*(passed|failed|error).* =+$' "$LOGS/suite.log" "$LOGS/cluster.log" || true
fi

log "make test: $(elapsed $(($(date +%s) - started))) in all; suite exit $suite, cluster tests exit $cluster"
[ "$suite" = 0 ] && [ "$cluster" = 0 ]
