#!/bin/bash
# deps.sh {run|test|bench}: install the Debian (and npm) packages Tern needs, only those missing.
# As root: apt-get update (only when something is missing) + apt-get install -y.
# Not root: print the exact command and fail.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_PKGS="gcc make cmake ninja-build pkg-config libssl-dev"
TEST_PKGS="clang libclang-rt-dev python3 python3-pytest python3-pytest-xdist python3-paho-mqtt mosquitto mosquitto-clients"
mode="${1:-run}"
pkgs="$BUILD_PKGS"
case "$mode" in
  run) ;;
  test|bench) pkgs="$BUILD_PKGS $TEST_PKGS" ;;
  *) echo "usage: $0 {run|test|bench}" >&2; exit 2 ;;
esac
if ! command -v node >/dev/null 2>&1 && [ "$mode" != run ]; then
  pkgs="$pkgs nodejs npm"
fi

missing=""
for p in $pkgs; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "deps: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq $missing >/dev/null
  else
    echo "deps: missing packages:$missing" >&2
    echo "run: sudo apt-get install -y$missing" >&2
    exit 1
  fi
fi

if [ "$mode" != run ] && [ ! -d tests/interop/node_modules/mqtt ] && [ -f tests/interop/package.json ]; then
  echo "deps: npm install (MQTT.js) into tests/interop/node_modules"
  (cd tests/interop && npm install --no-audit --no-fund --loglevel=error)
fi
