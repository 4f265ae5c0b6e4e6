#!/usr/bin/env bash
# `bun run kind:down`: deletes the kind cluster made by `bun run kind:up` (nothing else).
set -euo pipefail

cluster="${KIND_CLUSTER_NAME:-tailscale-gateway}"
command -v kind >/dev/null || { echo "kind:down: kind is required" >&2; exit 1; }
if kind get clusters | grep -qx "$cluster"; then
  kind delete cluster --name "$cluster"
else
  echo "kind:down: no cluster named $cluster"
fi
