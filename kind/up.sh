#!/usr/bin/env bash
# `bun run kind:up`: a kind cluster with Gateway API, Envoy Gateway (extensionManager pointing at
# tailscale-gateway, from kind/envoy-gateway-values.yaml), the locally built image, the chart, and the
# examples. Re-running it upgrades everything in place.
#
# Needs docker, kind, kubectl; helm from PATH, else built once from the Go module proxy
# (test/harness/helm/build-helm.sh). Environment:
#   KIND_CLUSTER_NAME   cluster name (default tailscale-gateway)
#   KIND_NODE_IMAGE     kindest/node image (default: kind's own)
#   EG_VERSION          Envoy Gateway chart version (default v1.9.1)
#   TS_CLIENT_ID, TS_CLIENT_SECRET
#                       a Tailscale OAuth client; without it the example TailscaleTailnet reports
#                       InvalidCredentials, and everything else still installs.
set -euo pipefail
cd "$(dirname "$0")/.."

cluster="${KIND_CLUSTER_NAME:-tailscale-gateway}"
eg_version="${EG_VERSION:-v1.9.1}"
context="kind-$cluster"
image_repo="tailscale-gateway"
image_tag="dev-$(date +%s)"
namespace="tailscale-gateway"

need() {
  command -v "$1" >/dev/null || { echo "kind:up: $1 is required" >&2; exit 1; }
}
need docker
need kind
need kubectl
if command -v helm >/dev/null; then
  helm="helm"
else
  helm="$(bash test/harness/helm/build-helm.sh | tail -n 1)/helm"
fi
if [ ! -f kind/envoy-gateway-values.yaml ]; then
  echo "kind:up: kind/envoy-gateway-values.yaml is missing" >&2
  exit 1
fi
kc() { kubectl --context "$context" "$@"; }
step() { printf '\n==> %s\n' "$*"; }

step "cluster $cluster"
if kind get clusters | grep -qx "$cluster"; then
  echo "exists"
else
  create=(create cluster --name "$cluster" --config kind/cluster.yaml)
  if [ -n "${KIND_NODE_IMAGE:-}" ]; then create+=(--image "$KIND_NODE_IMAGE"); fi
  kind "${create[@]}"
fi

step "Gateway API and Envoy Gateway CRDs ($eg_version)"
# Server-side apply: the CRDs are too large for client-side apply's last-applied annotation.
"$helm" template eg-crds oci://docker.io/envoyproxy/gateway-crds-helm --version "$eg_version" \
  --set crds.gatewayAPI.enabled=true --set crds.gatewayAPI.channel=standard --set crds.envoyGateway.enabled=true |
  kc apply --server-side --force-conflicts -f -

step "Envoy Gateway ($eg_version) with the tailscale-gateway extensionManager"
"$helm" upgrade --install eg oci://docker.io/envoyproxy/gateway-helm --version "$eg_version" \
  --kube-context "$context" --namespace envoy-gateway-system --create-namespace \
  --set crds.enabled=false --values kind/envoy-gateway-values.yaml --wait --timeout 5m
# Envoy Gateway reads its config at start only.
kc -n envoy-gateway-system rollout restart deployment/envoy-gateway
kc -n envoy-gateway-system rollout status deployment/envoy-gateway --timeout 5m

step "image $image_repo:$image_tag"
docker build --tag "$image_repo:$image_tag" \
  --build-arg TSGW_BUILD_COMMIT="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" .
kind load docker-image "$image_repo:$image_tag" --name "$cluster"

step "chart charts/tailscale-gateway"
"$helm" upgrade --install tailscale-gateway charts/tailscale-gateway \
  --kube-context "$context" --namespace "$namespace" --create-namespace \
  --values kind/tailscale-gateway-values.yaml \
  --set image.repository="$image_repo" --set image.tag="$image_tag" --set image.pullPolicy=Never \
  --wait --timeout 5m

step "Gateway and examples"
kc apply --server-side -f kind/gateway.yaml
kc apply --server-side -f examples/kubernetes/
if [ -n "${TS_CLIENT_ID:-}" ] && [ -n "${TS_CLIENT_SECRET:-}" ]; then
  # Replaces the placeholder credentials of examples/kubernetes/tailnet.yaml.
  kc -n "$namespace" create secret generic tailscale-oauth \
    --from-literal=client_id="$TS_CLIENT_ID" --from-literal=client_secret="$TS_CLIENT_SECRET" \
    --dry-run=client --output yaml | kc apply --server-side --force-conflicts -f -
else
  echo "TS_CLIENT_ID/TS_CLIENT_SECRET not set: TailscaleTailnet corp keeps the example's placeholder credentials"
fi

step "done"
kc get tailscaletailnets,tailscaleendpoints,tailscalegateways,tailscaleroutepolicies --all-namespaces
echo "Operator logs: kubectl --context $context -n $namespace logs deployment/tailscale-gateway -f"
echo "Tear down:     bun run kind:down"
