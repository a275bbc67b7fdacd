#!/bin/bash
# deps.sh {run|test|format}: make sure the Debian packages (and, for test, the npm packages of
# tests/interop) that a make target needs are installed; installs only what is missing.
#   run     build + runtime: compiler, CMake, Ninja, OpenSSL headers
#   test    run + clang (fuzz, TSan), pytest (+xdist), paho-mqtt, mosquitto + clients,
#           Node.js/npm when there is no `node`, and MQTT.js (npm ci in tests/interop)
#   format  clang-format
# As root: `apt-get update` (only when a package is missing) and `apt-get install -y`.
# Not root: prints the exact `sudo apt-get install` line and exits 1.
# Fast when everything is there: one dpkg-query, no network.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_PKGS="gcc make cmake ninja-build pkg-config libssl-dev"
TEST_PKGS="clang libclang-rt-dev python3 python3-pytest python3-pytest-xdist python3-paho-mqtt
           mosquitto mosquitto-clients"
mode="${1:-run}"
case "$mode" in
  run) pkgs="$BUILD_PKGS" ;;
  test) pkgs="$BUILD_PKGS $TEST_PKGS" ;;
  bench) pkgs="$BUILD_PKGS mosquitto" ;;
  format) pkgs="clang-format" ;;
  *) echo "usage: $0 {run|test|format}" >&2; exit 2 ;;
esac
# Node.js only when there is none (a NodeSource or nvm node is fine and brings its own npm)
if [ "$mode" = test ] && ! command -v node > /dev/null 2>&1; then
  pkgs="$pkgs nodejs npm"
elif [ "$mode" = test ] && ! command -v npm > /dev/null 2>&1; then
  pkgs="$pkgs npm"
fi

# one dpkg-query for all (packages dpkg never heard of are simply not listed)
# shellcheck disable=SC2086
installed_now=" $(dpkg-query -W -f='${Package}:${Status}\n' $pkgs 2>/dev/null |
                  sed -n 's/:install ok installed$//p' | tr '\n' ' ' || true)"
missing=""
for p in $pkgs; do
  case "$installed_now" in
    *" $p "*) ;;
    *) missing="$missing $p" ;;
  esac
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "deps: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq $missing < /dev/null > /dev/null
  else
    echo "deps: missing Debian packages:$missing" >&2
    echo "deps: run: sudo apt-get install -y$missing" >&2
    exit 1
  fi
fi

# MQTT.js for tests/interop, exactly as package-lock.json pins it; reinstalled when the lock
# file changed since the last install (npm writes node_modules/.package-lock.json)
if [ "$mode" = test ] && [ -f tests/interop/package-lock.json ]; then
  installed=tests/interop/node_modules/.package-lock.json
  if [ ! -d tests/interop/node_modules/mqtt ] || [ tests/interop/package-lock.json -nt "$installed" ]; then
    echo "deps: npm ci (MQTT.js) in tests/interop"
    (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error < /dev/null)
  fi
fi
