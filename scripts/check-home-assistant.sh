#!/bin/bash
# A real Home Assistant against the bridge's MQTT face (issue 11): a mosquitto, `sec1000 bridge
# --simulate --mqtt ... --mqtt-control`, and Home Assistant with only its MQTT integration, all on
# loopback. Home Assistant must create the SEC1000 device with every entity, show live values, log
# no warning or error about the discovery, and change the export limit through its number entity
# (an automation calls number.set_value), which the device confirms.
#
#   scripts/check-home-assistant.sh [SEC1000-BINARY]
#
# Installs Home Assistant from PyPI into .venv-homeassistant (Python 3.13 needed; about 5 minutes
# the first time). HA_VERSION picks the release (default 2025.4.4, the newest for Python 3.13.0).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-.build/debug/sec1000}
HA_VERSION=${HA_VERSION:-2025.4.4}
VENV=.venv-homeassistant
WAIT=${WAIT:-240}

python=""
for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13 python3.13; do
    # A pyenv shim exists even when its version is not selected: run it to be sure.
    if "$candidate" -c pass > /dev/null 2>&1; then python=$candidate; break; fi
done
[ -n "$python" ] || { echo "Home Assistant $HA_VERSION needs Python 3.13, which is not installed" >&2; exit 2; }
if ! "$VENV/bin/python" -c "import homeassistant.const as c; assert c.__version__ == '$HA_VERSION'" 2> /dev/null; then
    "$python" -m venv "$VENV"
    "$VENV/bin/pip" install -q "homeassistant==$HA_VERSION" paho-mqtt==2.1.0
fi
[ -x "$BIN" ] || { echo "no $BIN: run swift build first" >&2; exit 2; }

DIR=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done; wait 2> /dev/null || true; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
MODBUS_PORT=$(free_port) HTTP_PORT=$(free_port)

. scripts/mosquitto-on-loopback.sh
start_mosquitto "$DIR"
PIDS+=("$BROKER_PID")

"$BIN" bridge --simulate --listen "127.0.0.1:$MODBUS_PORT" --interval 2 --log-level info \
    --mqtt "mqtt://127.0.0.1:$MQTT_PORT" --mqtt-prefix site1 \
    --enable-control --control-allow 127.0.0.1/32 --meter-mode sum --mqtt-control --mqtt-control-unauthenticated \
    > "$DIR/bridge.log" 2>&1 &
PIDS+=($!)

# Home Assistant: its MQTT integration as a config entry (it is set up through the UI, not YAML),
# and an automation that sets the export limit once the entities exist.
CONFIG=$DIR/ha
mkdir -p "$CONFIG/.storage"
cat > "$CONFIG/configuration.yaml" << EOF
homeassistant:
  name: sec1000 check
  latitude: 52.5
  longitude: 13.4
  elevation: 30
  unit_system: metric
  time_zone: UTC
  country: DE
  currency: EUR
http:
  server_host: 127.0.0.1
  server_port: $HTTP_PORT
logger:
  default: info
energy:
automation:
  - alias: set export limit
    triggers:
      - trigger: homeassistant
        event: start
    actions:
      - wait_template: "{{ integration_entities('mqtt') | select('match', 'number\\\\.') | list | count > 0 }}"
        timeout: 60
      - delay: 5
      - action: number.set_value
        target:
          entity_id: "{{ integration_entities('mqtt') | select('match', 'number\\\\.') | list }}"
        data:
          value: 4321
EOF
cat > "$CONFIG/.storage/core.config_entries" << EOF
{"version": 1, "minor_version": 1, "key": "core.config_entries", "data": {"entries": [
  {"entry_id": "01JSEC1000MQTTCHECK000000", "version": 1, "minor_version": 1, "domain": "mqtt",
   "title": "127.0.0.1", "source": "user", "unique_id": null, "disabled_by": null,
   "pref_disable_new_entities": false, "pref_disable_polling": false,
   "data": {"broker": "127.0.0.1", "port": $MQTT_PORT},
   "options": {"discovery": true, "discovery_prefix": "homeassistant"}}]}}
EOF
"$VENV/bin/hass" --config "$CONFIG" > "$DIR/ha-stdout.log" 2>&1 &
HASS=$!
PIDS+=($HASS)

echo "waiting for Home Assistant to set the export limit (up to $WAIT s)..."
for _ in $(seq "$WAIT"); do
    grep -q "limit=4321W" "$DIR/bridge.log" && grep -q "confirmed" "$DIR/bridge.log" && break
    kill -0 "$HASS" 2> /dev/null || break
    sleep 1
done
sleep 5  # a few more states for the restore file
kill -TERM "$HASS"
for _ in $(seq 60); do kill -0 "$HASS" 2> /dev/null || break; sleep 1; done

if "$VENV/bin/python" scripts/check-home-assistant.py "$CONFIG" "$DIR/bridge.log"; then
    rm -rf "$DIR"
else
    echo "logs kept in $DIR" >&2
    exit 1
fi
