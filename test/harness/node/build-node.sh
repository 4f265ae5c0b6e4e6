#!/usr/bin/env bash
# Builds the node side of the one-node test cluster once from the Go module proxy into
# ~/.cache/tailscale-gateway/node-cluster/: kubelet, kube-scheduler, kube-controller-manager and
# kube-proxy (one `go build` of k8s.io/kubernetes at the apiserver's version, the same throwaway-module
# way test/harness/control-plane/build-binaries.sh builds the apiserver), CoreDNS (the cluster DNS) and our
# ./tools (the test image's pause process, HTTP client/server and resolver).
# Containerd, runc and the CNI plugins come from Debian packages (.ci/run installs them).
# Prints the directory holding the binaries on its last line.
# `--cached-only`: build nothing; exit 3 with a hint when a binary is missing (what tests use).
# Each group is built only when missing, so a failed or interrupted run resumes where it stopped.
set -euo pipefail

cached_only=false
if [ "${1:-}" = "--cached-only" ]; then cached_only=true; fi

KUBE_VERSION="${TSGW_KUBE_VERSION:-1.37.2}"
COREDNS_VERSION="${TSGW_COREDNS_VERSION:-1.14.7}"
KUBE_BINS=(kubelet kube-scheduler kube-controller-manager kube-proxy)

cache="${TSGW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tailscale-gateway}"
bin="$cache/node-cluster/k8s-v$KUBE_VERSION-coredns-v$COREDNS_VERSION"

here="$(cd "$(dirname "$0")" && pwd)"
# Our test-image program (./tools) counts as missing when its source changed since it was built.
tools_sum() { (cd "$here/tools" && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1); }
tools_current() { [ -x "$bin/tools" ] && [ "$(cat "$bin/tools.source" 2>/dev/null)" = "$(tools_sum)" ]; }
complete() {
  local b
  for b in "${KUBE_BINS[@]}" coredns; do [ -x "$bin/$b" ] || return 1; done
  tools_current
}
if complete; then
  echo "$bin"
  exit 0
fi
if [ "$cached_only" = true ]; then
  echo "build-node: kubelet, kube-scheduler, kube-controller-manager, kube-proxy, coredns or tools missing (or tools older than its source) in $bin; run \`bash test/harness/node/build-node.sh\` once (cold: ~5-15 min on 2 cores)" >&2
  exit 3
fi
command -v go >/dev/null || { echo "build-node: Go is needed to build the node binaries" >&2; exit 1; }
mkdir -p "$bin"
export GOFLAGS="-mod=mod"
export CGO_ENABLED=0
start=$(date +%s)

kube_missing=false
for b in "${KUBE_BINS[@]}"; do [ -x "$bin/$b" ] || kube_missing=true; done
if [ "$kube_missing" = true ]; then
  work="$cache/node-cluster/build-k8s-v$KUBE_VERSION"
  mkdir -p "$work"
  (
    cd "$work"
    modfile=$(go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    minor_patch="${KUBE_VERSION#*.}"
    staging_version="v0.$minor_patch"
    {
      echo "module tsgw.local/node-cluster"
      echo
      echo "go $(sed -n 's/^go \(.*\)/\1/p' "$modfile")"
      echo
      echo "require k8s.io/kubernetes v$KUBE_VERSION"
      echo
      grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$modfile" | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
    } > go.mod
    {
      echo "//go:build tools"
      echo
      echo "package tools"
      echo
      for b in "${KUBE_BINS[@]}"; do echo "import _ \"k8s.io/kubernetes/cmd/$b\""; done
    } > tools.go
    go mod tidy >/dev/null 2>&1 || true
    for b in "${KUBE_BINS[@]}"; do go get "k8s.io/kubernetes/cmd/$b@v$KUBE_VERSION" >&2; done
    v="k8s.io/component-base/version"
    major="${KUBE_VERSION%%.*}"
    minor="${minor_patch%%.*}"
    ldflags="-s -w -X $v.gitVersion=v$KUBE_VERSION -X $v.gitMajor=$major -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
    ldflags="$ldflags -X $v.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    out="$work/out"
    rm -rf "$out" && mkdir -p "$out"
    pkgs=()
    for b in "${KUBE_BINS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
    # One build of the four: they share most packages, so this costs little more than kubelet alone.
    go build -trimpath -ldflags "$ldflags" -o "$out/" "${pkgs[@]}" >&2
    for b in "${KUBE_BINS[@]}"; do mv "$out/$b" "$bin/$b"; done
  )
fi

if [ ! -x "$bin/coredns" ]; then
  work="$cache/node-cluster/build-coredns-v$COREDNS_VERSION"
  mkdir -p "$work"
  (
    cd "$work"
    modfile=$(go mod download -json "github.com/coredns/coredns@v$COREDNS_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    {
      echo "module tsgw.local/coredns"
      echo
      echo "go $(sed -n 's/^go \(.*\)/\1/p' "$modfile")"
      echo
      echo "require github.com/coredns/coredns v$COREDNS_VERSION"
    } > go.mod
    cat > tools.go <<'GO'
//go:build tools

package tools

import _ "github.com/coredns/coredns"
GO
    go get "github.com/coredns/coredns@v$COREDNS_VERSION" >&2
    go build -trimpath -ldflags "-s -w" -o "$bin/coredns.tmp" github.com/coredns/coredns >&2
    mv "$bin/coredns.tmp" "$bin/coredns"
  )
fi
if ! tools_current; then
  (cd "$here/tools" && go build -trimpath -ldflags "-s -w" -o "$bin/tools.tmp" . >&2)
  mv "$bin/tools.tmp" "$bin/tools"
  tools_sum > "$bin/tools.source"
fi
echo "build-node: built in $(( $(date +%s) - start )) s" >&2
echo "$bin"
