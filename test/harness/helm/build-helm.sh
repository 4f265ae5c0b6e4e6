#!/usr/bin/env bash
# Builds the helm CLI once from the Go module proxy into a cache outside the repository (Debian has no
# helm package), so the chart tests run on a machine that has only Go.
# Prints the directory holding `helm` on its last line.
# $TSGW_HELM, when set to an executable helm, wins and nothing is built (its directory is printed).
# A failed or interrupted build leaves no binary behind, so the next run simply starts again; the Go
# module cache keeps the downloads.
set -euo pipefail

HELM_VERSION="${TSGW_HELM_VERSION:-3.22.0}"

if [ -n "${TSGW_HELM:-}" ] && [ -x "$TSGW_HELM" ]; then
  dirname "$TSGW_HELM"
  exit 0
fi

cache="${TSGW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tailscale-gateway}"
bin="$cache/helm/helm-v$HELM_VERSION"
if [ -x "$bin/helm" ]; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "build-helm: Go is needed to build helm (or set TSGW_HELM)" >&2; exit 1; }
mkdir -p "$bin"
export GOFLAGS="-mod=mod"
export CGO_ENABLED=0

start=$(date +%s)
# Built as a dependency of a throwaway module: `go install helm.sh/helm/v3/cmd/helm@v…` refuses a
# module whose go.mod has replace directives, and this way works whether or not it has any.
work="$cache/helm/build-helm-v$HELM_VERSION"
mkdir -p "$work"
(
  cd "$work"
  modfile=$(go mod download -json "helm.sh/helm/v3@v$HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module tsgw.local/helm"
    echo
    echo "go $(sed -n 's/^go \(.*\)/\1/p' "$modfile")"
    echo
    echo "require helm.sh/helm/v3 v$HELM_VERSION"
  } > go.mod
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "helm.sh/helm/v3/cmd/helm"
GO
  go get "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION" >&2
  # As helm's Makefile does: the release version, and the Kubernetes version `helm template` assumes
  # (client-go v0.N → 1.N; without it, v1.20, which charts with a kubeVersion constraint refuse).
  client_go=$(go list -m -f '{{.Version}}' k8s.io/client-go)
  k8s_minor=$(echo "$client_go" | cut -d. -f2)
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags="$ldflags -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
  done
  go build -trimpath -ldflags "$ldflags" -o "$bin/helm.tmp" helm.sh/helm/v3/cmd/helm >&2
  mv "$bin/helm.tmp" "$bin/helm"
)
echo "build-helm: built in $(( $(date +%s) - start )) s" >&2
echo "$bin"
