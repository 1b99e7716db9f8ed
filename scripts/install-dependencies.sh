#!/usr/bin/env bash
# Installs the system packages the build and the tests need, only when they are missing.
# Debian/Ubuntu: libmodbus-dev (the Modbus server), mbpoll (a real Modbus client the tests run),
# pkg-config (SwiftPM finds libmodbus through it).
set -euo pipefail

packages=(libmodbus-dev mbpoll pkg-config)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if ((${#missing[@]})); then
    echo "Installing missing packages: ${missing[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

command -v swift >/dev/null || { echo "swift is not on PATH: install Swift 6.1 or later (https://swift.org/install)" >&2; exit 1; }
