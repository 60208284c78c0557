#!/usr/bin/env bash
# `make kind-up` and `make kind-down`: the local kind cluster `skaffold dev` deploys to.
#   up.sh up     `kind create cluster --config k8s/kind/cluster.yaml` (cluster `mcstatbot`, kube-context
#                kind-mcstatbot), then the `mcstatbot` namespace and the bot's Secret `mcstatbot-telegram`
#                (TELEGRAM_BOT_TOKEN and a random webhook secret); what is there already is kept, so a second
#                run changes nothing. KIND_NODE_IMAGE names a node image other than kind's default (a
#                Kubernetes version of your choice, or the one `make kind-node-image` builds offline).
#   up.sh down   `kind delete cluster --name mcstatbot`.
# Needs docker, kind and kubectl on PATH.
set -euo pipefail
cd "$(dirname "$0")/../.."
NAME=mcstatbot
CONTEXT="kind-$NAME"
NAMESPACE=mcstatbot
SECRET=mcstatbot-telegram

die() {
  echo "make kind-$1: $2" >&2
  exit 1
}

need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "$cmd" "$tool is not on PATH (https://kind.sigs.k8s.io/docs/user/quick-start/ lists what kind needs)"
  done
}

cmd=${1:?up or down}
case "$cmd" in
up)
  [ -n "${TELEGRAM_BOT_TOKEN:-}" ] ||
    die up "TELEGRAM_BOT_TOKEN is not set: give the bot's token from @BotFather (TELEGRAM_BOT_TOKEN=123456:ABC... make kind-up)"
  need docker kind kubectl
  if kind get clusters 2>/dev/null | grep -qx "$NAME"; then
    echo "kind cluster $NAME: there already"
  else
    kind create cluster --config k8s/kind/cluster.yaml ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 240s
  fi
  kc() { kubectl --context "$CONTEXT" "$@"; }
  if ! kc get namespace "$NAMESPACE" >/dev/null 2>&1; then
    kc create namespace "$NAMESPACE"
  fi
  if kc -n "$NAMESPACE" get secret "$SECRET" >/dev/null 2>&1; then
    echo "secret $NAMESPACE/$SECRET: there already (kubectl -n $NAMESPACE delete secret $SECRET, then make kind-up, for a new one)"
  else
    webhook_secret=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
    kc -n "$NAMESPACE" create secret generic "$SECRET" \
      --from-literal=telegram-bot-token="$TELEGRAM_BOT_TOKEN" --from-literal=webhook-secret="$webhook_secret"
  fi
  echo "kind cluster $NAME is up (kube-context $CONTEXT): run skaffold dev"
  ;;
down)
  need kind
  kind delete cluster --name "$NAME"
  ;;
*)
  echo "usage: up.sh up|down" >&2
  exit 2
  ;;
esac
