# mcstatbot: the commands a developer and CI need. `make help` lists them.
SHELL := /bin/bash
export PATH := $(CURDIR)/.tools/bin:$(HOME)/.local/bin:$(PATH)
UV ?= uv
PYTEST_ARGS ?=

.PHONY: help setup test-deps run test lint format e2e chart chart-docs bench soak clean
.PHONY: cluster cluster-down kind-up kind-down kind-toolchain kind-node-image

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: ## install uv (if missing) and the Python workspace
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --all-packages

test-deps: ## install everything the tests need (uv, Python deps, redis-server, Node peers, DynamoDB Local, helm)
	bash scripts/install-test-deps.sh

run: ## the whole bot on this machine: query service + bot (long polling, SQLite, in-process cache)
	@bash scripts/run-local.sh

lint: ## ruff (lint and format check) and mypy --strict
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy

format: ## apply ruff's fixes and formatting
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

test: ## install what the tests need, lint, run the suite (the cluster toolchain builds meanwhile), then tests/cluster
	@PYTEST_ARGS="$(PYTEST_ARGS)" UV="$(UV)" bash scripts/test-all.sh

e2e: test-deps ## only the end-to-end suite (tests/e2e: every service as its own process, real peers)
	$(UV) run pytest tests/e2e $(PYTEST_ARGS)

chart: test-deps ## only the chart and image checks (helm lint, kubernetes-validate, checkov, chart and image tests)
	$(UV) run pytest tests/chart tests/images $(PYTEST_ARGS)

chart-docs: ## regenerate charts/mcstatbot/README.md from the values' `# --` comments (helm-docs)
	bash scripts/install-chart-tools.sh && bash tests/chart/render-readme.sh

bench: test-deps ## the benchmarks (~17 min; BENCH_QUICK=1: ~4): bench/results/latest.json, .png, docs/benchmarks.md
	$(UV) run python -m bench

soak: test-deps ## the e2e session scenario in a loop (SOAK_SECONDS, default 600): replies, errors, RSS growth
	$(UV) run python -m tests.e2e.soak

cluster: ## start a local single-node Kubernetes cluster in its own network namespace (docs/cluster.md); prints the KUBECONFIG
	@bash scripts/cluster/cluster.sh up

cluster-down: ## stop the cluster `make cluster` started and remove everything it made
	@bash scripts/cluster/cluster.sh down

kind-up: ## the kind cluster for `skaffold dev` (k8s/kind/cluster.yaml), its namespace and the bot's Secret (TELEGRAM_BOT_TOKEN; KIND_NODE_IMAGE: another node image)
	@bash scripts/kind/up.sh up

kind-down: ## delete the kind cluster `make kind-up` made
	@bash scripts/kind/up.sh down

kind-toolchain: ## build kind, crictl and skaffold from their Go modules into the cache (docs/kubernetes.md); prints the bin folder
	@bash scripts/kind/toolchain.sh

kind-node-image: ## build the kind node image offline into the cache (docs/kubernetes.md); prints its name and archive
	@bash scripts/kind/node-image.sh

clean: ## remove caches and local state
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis test-logs mcstatbot.db
