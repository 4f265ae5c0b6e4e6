#!/usr/bin/env bash
# Builds Go programs linked against tailscale.com at the version of the operator's default proxy image
# (DEFAULT_PROXY_TAG in src/proxy/objects.ts, so the tests check against what the proxies run) once
# from the Go module proxy into ~/.cache/tailscale-gateway/tailscale/<version>/. Today that is our
# config-check (./config-check), which decodes proxy config files with tailscale's own parsers, our
# tailnet-control (./tailnet-control), the tests' control server, and containerboot, tailscaled and tailscale for the node cluster's proxy image (test/harness/node/images.ts).
# Prints the directory holding the binaries on its last line.
# $TSGW_TAILSCALE_DIR, when set and holding every binary, wins and nothing is built;
# $TSGW_TAILSCALE_VERSION picks another tailscale.com version (v1.104.x does not resolve here).
# Each binary is built only when missing (ours are cached per hash of their source, so a source change
# builds anew and several checkouts' sources coexist), so a failed or interrupted run resumes where it
# stopped. The last line names a directory holding every binary under its plain name.
# `--cached-only`: build nothing; exit 3 with a hint when a binary is missing or stale (what tests use).
# Measured on 2 cores with other builds running (load ~5): config-check cold (empty Go module and
# build caches: 125 MB of modules, 175 MB of build cache) 30 s; rebuilt after a source change ~1 s.
# tailscaled itself takes 120 s cold on idle cores (reference tailnet-lab.md).
set -euo pipefail

cached_only=false
if [ "${1:-}" = "--cached-only" ]; then cached_only=true; fi

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"

# What is built, as name=package: our programs are directories beside this script (./name), tailscale's
# are import paths, e.g. "tailscaled=tailscale.com/cmd/tailscaled" — adding one is one line here.
TARGETS=(
  "config-check=./config-check"
  # The tests' tailnet: testcontrol + DERP + STUN + an admin API (./tailnet-control, README.md).
  "tailnet-control=./tailnet-control"
  # The proxy image test/harness/node/images.ts builds (what tailscale/tailscale:<tag> runs).
  "containerboot=tailscale.com/cmd/containerboot"
  "tailscaled=tailscale.com/cmd/tailscaled"
  "tailscale=tailscale.com/cmd/tailscale"
)

tag=$(sed -n "s/^export const DEFAULT_PROXY_TAG = '\([^']*\)';.*/\1/p" "$root/src/proxy/objects.ts")
version="${TSGW_TAILSCALE_VERSION:-$tag}"
if [ -z "$version" ]; then
  echo "build-tailscale: no DEFAULT_PROXY_TAG in src/proxy/objects.ts and no TSGW_TAILSCALE_VERSION" >&2
  exit 1
fi
version="v${version#v}"

# A hash of our program's source, so a cached binary built from older source counts as missing.
source_sum() { (cd "$here/$1" && find . -type f -name '*.go' | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1); }

# Where a target's binary is cached: tailscale's own commands as $bin/<name>; ours as
# $bin/ours/<name>-<hash of its source>, so checkouts with different sources (several worktrees, CI
# beside a developer) each find their own build instead of rebuilding over each other's.
cached_path() {
  local name="${1%%=*}" pkg="${1#*=}"
  if [ "${pkg#./}" = "$pkg" ]; then echo "$bin/$name"; else echo "$bin/ours/$name-$(source_sum "${pkg#./}")"; fi
}
complete() {
  local target
  for target in "${TARGETS[@]}"; do [ -x "$(cached_path "$target")" ] || return 1; done
}
# The directory this checkout's tests use: every binary under its plain name (hard links into the
# cache, so copying one out copies the file), one directory per combination of our sources.
assemble() {
  local target paths="" dir tmp
  for target in "${TARGETS[@]}"; do paths+="$(cached_path "$target") "; done
  dir="$bin/set-$(echo "$paths" | sha256sum | cut -c1-16)"
  if [ ! -d "$dir" ]; then
    tmp=$(mktemp -d "$bin/.set.XXXXXX")
    for target in "${TARGETS[@]}"; do
      ln "$(cached_path "$target")" "$tmp/${target%%=*}" 2>/dev/null || cp "$(cached_path "$target")" "$tmp/${target%%=*}"
    done
    # Another run may have assembled the same set meanwhile: then keep its.
    mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
  fi
  # In use: keep them from the pruning of week-old builds after a build.
  # shellcheck disable=SC2086
  touch -c "$dir" $paths 2>/dev/null || true
  echo "$dir"
}

if [ -n "${TSGW_TAILSCALE_DIR:-}" ]; then
  given=true
  for target in "${TARGETS[@]}"; do [ -x "$TSGW_TAILSCALE_DIR/${target%%=*}" ] || given=false; done
  if [ "$given" = true ]; then
    echo "$TSGW_TAILSCALE_DIR"
    exit 0
  fi
fi

cache="${TSGW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tailscale-gateway}"
bin="$cache/tailscale/$version"
if complete; then
  assemble
  exit 0
fi

if [ "$cached_only" = true ]; then
  echo "build-tailscale: the tailscale.com $version programs in $bin are missing or older than their source; run \`bash test/harness/tailscale/build-tailscale.sh\` once (a cold build takes a minute or more) or set TSGW_TAILSCALE_DIR" >&2
  exit 3
fi
command -v go >/dev/null || { echo "build-tailscale: Go is needed to build against tailscale.com (or set TSGW_TAILSCALE_DIR)" >&2; exit 1; }
mkdir -p "$bin/ours"
# One build at a time per version (the throwaway module below is shared); a run that waited may find
# everything built.
exec 8>"$bin/.build.lock"
flock 8
if complete; then
  assemble
  exit 0
fi
export GOFLAGS="-mod=mod"
export CGO_ENABLED=0

start=$(date +%s)
# A throwaway module that requires tailscale.com, holding copies of our programs: tailscale.com's go.mod
# pins every dependency, so requiring it at one version pins the whole build.
work="$cache/tailscale/build-$version"
mkdir -p "$work"
(
  cd "$work"
  modfile=$(go mod download -json "tailscale.com@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module tsgw.local/tailscale"
    echo
    echo "go $(sed -n 's/^go \(.*\)/\1/p' "$modfile")"
    echo
    echo "require tailscale.com $version"
  } > go.mod
  {
    echo "//go:build tools"
    echo
    echo "package tools"
    echo
    for target in "${TARGETS[@]}"; do
      pkg="${target#*=}"
      if [ "${pkg#./}" = "$pkg" ]; then echo "import _ \"$pkg\""; fi
    done
  } > tools.go
  for target in "${TARGETS[@]}"; do
    name="${target%%=*}"
    pkg="${target#*=}"
    if [ "${pkg#./}" != "$pkg" ]; then
      rm -rf "./$name"
      cp -r "$here/${pkg#./}" "./$name"
    fi
  done
  go mod tidy >&2
  # What `--version` prints; without them `1.102.2-ERR-BuildInfo`.
  v="tailscale.com/version"
  ldflags="-s -w -X $v.longStamp=${version#v} -X $v.shortStamp=${version#v}"
  for target in "${TARGETS[@]}"; do
    name="${target%%=*}"
    pkg="${target#*=}"
    out=$(cached_path "$target")
    if [ -x "$out" ]; then continue; fi
    go build -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg" >&2
    mv "$out.tmp" "$out"
  done
)
echo "build-tailscale: built in $(( $(date +%s) - start )) s" >&2
# Builds of our programs from sources no checkout has had for a week go (a source change adds ~20 MB).
find "$bin/ours" -maxdepth 1 -type f -mtime +7 -delete 2>/dev/null || true
find "$bin" -maxdepth 1 -name 'set-*' -type d -mtime +7 -exec rm -rf {} + 2>/dev/null || true
assemble
