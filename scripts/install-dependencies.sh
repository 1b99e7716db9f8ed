#!/usr/bin/env bash
# Installs the system packages the build and the tests need, only when they are missing.
# Debian/Ubuntu: libmodbus-dev (the Modbus server), mbpoll (a real Modbus client the tests run),
# pkg-config (SwiftPM finds libmodbus through it), libmosquitto-dev (the MQTT client), mosquitto
# and mosquitto-clients (a real broker and real peers the MQTT tests run), prometheus (promtool and a
# real Prometheus that scrapes the HTTP face), chromium (loads the status page headless); and
# pysunspec2, a SunSpec client the tests run,
# from PyPI into .venv-tests/ unless python3 can already import it.
# `install-dependencies.sh deb` installs only what `make deb` and scripts/test-deb.sh need instead:
# dpkg-dev (dpkg-shlibdeps), fakeroot, lintian, adduser and systemd (systemd-analyze).
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

packages=(libmodbus-dev mbpoll pkg-config libmosquitto-dev mosquitto mosquitto-clients prometheus chromium)
if [ "${1:-}" = deb ]; then packages=(libmodbus-dev libmosquitto-dev pkg-config dpkg-dev fakeroot lintian adduser systemd); fi
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# Any python3 will do (it may not come from a Debian package).
command -v python3 >/dev/null || missing+=(python3)

if ((${#missing[@]})); then
    echo "Installing missing packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

[ "${1:-}" = deb ] && exit 0

command -v swift >/dev/null || { echo "swift is not on PATH: install Swift 6.1 or later (https://swift.org/install)" >&2; exit 1; }

venv=.venv-tests
if ! python3 -c 'import sunspec2' 2>/dev/null && ! "$venv/bin/python3" -c 'import sunspec2' 2>/dev/null; then
    echo "Installing pysunspec2 into $venv/"
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        # Debian's python3 keeps venv's pip bootstrap in a package of its own.
        rm -rf "$venv"
        export DEBIAN_FRONTEND=noninteractive
        $sudo apt-get update -q
        $sudo apt-get install -y -q --no-install-recommends python3-venv
        python3 -m venv "$venv"
    fi
    "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check "pysunspec2==1.3.7"
fi
