#!/usr/bin/env bash
# Builds kube-apiserver and etcd once from the Go module proxy into a cache outside the repository,
# so that tests run against the real control plane on a machine that has only Go.
# Prints the directory holding the two binaries on its last line.
# $KUBEBUILDER_ASSETS, when set and holding both binaries, wins and nothing is built.
# Each binary is built only when missing, so a failed or interrupted run resumes where it stopped.
set -euo pipefail

KUBE_VERSION="${TSGW_KUBE_VERSION:-1.37.2}"
ETCD_VERSION="${TSGW_ETCD_VERSION:-3.7.0}"

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ]; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

cache="${TSGW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tailscale-gateway}"
bin="$cache/control-plane/k8s-v$KUBE_VERSION-etcd-v$ETCD_VERSION"
if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/etcd" ]; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "build-binaries: Go is needed to build kube-apiserver and etcd (or set KUBEBUILDER_ASSETS)" >&2; exit 1; }
mkdir -p "$bin"
export GOFLAGS="-mod=mod"
export CGO_ENABLED=0

start=$(date +%s)
# kube-apiserver: k8s.io/kubernetes replaces its staging modules with ./staging paths that do not exist
# outside its repository; pin each to the matching published v0.x.y instead.
if [ ! -x "$bin/kube-apiserver" ]; then
  work="$cache/control-plane/build-k8s-v$KUBE_VERSION"
  mkdir -p "$work"
  (
    cd "$work"
    modfile=$(go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    minor_patch="${KUBE_VERSION#*.}"
    staging_version="v0.$minor_patch"
    {
      echo "module tsgw.local/control-plane"
      echo
      echo "go $(sed -n 's/^go \(.*\)/\1/p' "$modfile")"
      echo
      echo "require k8s.io/kubernetes v$KUBE_VERSION"
      echo
      grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$modfile" | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
    } > go.mod
    cat > tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
    go mod tidy >/dev/null 2>&1 || true
    go get "k8s.io/kubernetes/cmd/kube-apiserver@v$KUBE_VERSION" >&2
    # Without these, /version and --version report v0.0.0-master, which clients and kubectl warn about.
    v="k8s.io/component-base/version"
    major="${KUBE_VERSION%%.*}"
    minor="${minor_patch%%.*}"
    ldflags="-s -w -X $v.gitVersion=v$KUBE_VERSION -X $v.gitMajor=$major -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
    ldflags="$ldflags -X $v.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    go build -trimpath -ldflags "$ldflags" -o "$bin/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2
    mv "$bin/kube-apiserver.tmp" "$bin/kube-apiserver"
  )
fi
# etcd: `go install go.etcd.io/etcd/server/v3@v…` is refused because the server module's go.mod has
# replace directives (../api, ../client/…). Replaces only apply to the main module, so building it as a
# dependency of a throwaway module resolves the siblings to their published versions instead.
if [ ! -x "$bin/etcd" ]; then
  work="$cache/control-plane/build-etcd-v$ETCD_VERSION"
  mkdir -p "$work"
  (
    cd "$work"
    modfile=$(go mod download -json "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    {
      echo "module tsgw.local/etcd"
      echo
      echo "go $(sed -n 's/^go \(.*\)/\1/p' "$modfile")"
      echo
      echo "require go.etcd.io/etcd/server/v3 v$ETCD_VERSION"
    } > go.mod
    cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
    go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >&2
    go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3 >&2
    mv "$bin/etcd.tmp" "$bin/etcd"
  )
fi
echo "build-binaries: built in $(( $(date +%s) - start )) s" >&2
echo "$bin"
