#!/usr/bin/env bash
# Builds Envoy Gateway's `envoy-gateway` binary once from the Go module proxy into the same cache as the
# control-plane binaries (test/harness/control-plane/build-binaries.sh), so the e2e test can run the real EG
# against the real kube-apiserver on a machine that has only Go.
# Prints the directory holding `envoy-gateway` on its last line; next to the binary, `versions.env`
# names the Envoy Gateway and Gateway API module versions the binary was built with (the test reads
# both modules' CRDs from the Go module cache at those versions).
# $TSGW_ENVOY_GATEWAY_DIR, when set and holding an executable `envoy-gateway`, wins and nothing is built.
# The binary is built only when missing, so a failed or interrupted run resumes where it stopped.
# `--cached-only`: build nothing; exit 3 with a hint when the binary is not there yet (what tests use,
# since a cold build takes far longer than a test may).
set -euo pipefail

cached_only=false
if [ "${1:-}" = "--cached-only" ]; then cached_only=true; fi

EG_VERSION="${TSGW_EG_VERSION:-1.9.1}"

if [ -n "${TSGW_ENVOY_GATEWAY_DIR:-}" ] && [ -x "$TSGW_ENVOY_GATEWAY_DIR/envoy-gateway" ]; then
  echo "$TSGW_ENVOY_GATEWAY_DIR"
  exit 0
fi

cache="${TSGW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tailscale-gateway}"
bin="$cache/envoy-gateway/eg-v$EG_VERSION"
if [ -x "$bin/envoy-gateway" ] && [ -f "$bin/versions.env" ]; then
  echo "$bin"
  exit 0
fi

if [ "$cached_only" = true ]; then
  echo "build-envoy-gateway: no envoy-gateway v$EG_VERSION in $bin yet; run \`bash test/harness/envoy-gateway/build-envoy-gateway.sh\` once (a cold build takes several minutes) or set TSGW_ENVOY_GATEWAY_DIR" >&2
  exit 3
fi
command -v go >/dev/null || { echo "build-envoy-gateway: Go is needed to build envoy-gateway (or set TSGW_ENVOY_GATEWAY_DIR)" >&2; exit 1; }
mkdir -p "$bin"
export GOFLAGS="-mod=mod"
export CGO_ENABLED=0

start=$(date +%s)
# A throwaway module that requires github.com/envoyproxy/gateway: replace directives in a dependency's
# go.mod are ignored, and `go install pkg@version` would refuse the module if it ever carried any.
# EG v1.9.1's go.mod has none today; should a later release add some, they go below as pinned
# `replace` lines.
work="$cache/envoy-gateway/build-eg-v$EG_VERSION"
mkdir -p "$work"
(
  cd "$work"
  modfile=$(go mod download -json "github.com/envoyproxy/gateway@v$EG_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module tsgw.local/envoy-gateway"
    echo
    echo "go $(sed -n 's/^go \(.*\)/\1/p' "$modfile")"
    echo
    echo "require github.com/envoyproxy/gateway v$EG_VERSION"
  } > go.mod
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "github.com/envoyproxy/gateway/cmd/envoy-gateway"
GO
  if [ ! -x "$bin/envoy-gateway" ]; then
    go get "github.com/envoyproxy/gateway/cmd/envoy-gateway@v$EG_VERSION" >&2
    gwapi=$(go list -m -f '{{.Version}}' sigs.k8s.io/gateway-api)
    # What `envoy-gateway version` prints; EG's Makefile sets the same variables.
    v="github.com/envoyproxy/gateway/internal/cmd/version"
    ldflags="-s -w -X $v.envoyGatewayVersion=v$EG_VERSION -X $v.gatewayAPIVersion=$gwapi -X $v.gitCommitID=v$EG_VERSION"
    go build -trimpath -ldflags "$ldflags" -o "$bin/envoy-gateway.tmp" github.com/envoyproxy/gateway/cmd/envoy-gateway >&2
    mv "$bin/envoy-gateway.tmp" "$bin/envoy-gateway"
  fi
  {
    echo "EG_VERSION=v$EG_VERSION"
    echo "GATEWAY_API_VERSION=$(go list -m -f '{{.Version}}' sigs.k8s.io/gateway-api)"
  } > "$bin/versions.env.tmp"
  mv "$bin/versions.env.tmp" "$bin/versions.env"
)
echo "build-envoy-gateway: built in $(( $(date +%s) - start )) s" >&2
echo "$bin"
