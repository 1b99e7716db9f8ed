#!/bin/sh
# `make run`: the bridge on the simulated SEC1000 with every face on. With mosquitto installed, a
# broker of its own on a free loopback port (stopped with the bridge) carries the MQTT face.
set -eu
SWIFT=$1 PORT=$2 HTTP=$3
MQTT_ARGS=""
BROKER_PID=""
if [ -x /usr/sbin/mosquitto ]; then
    DIR=$(mktemp -d)
    . "$(dirname "$0")/mosquitto-on-loopback.sh"
    start_mosquitto "$DIR"
    trap 'kill $BROKER_PID 2>/dev/null; rm -rf "$DIR"' EXIT INT TERM
    MQTT_ARGS="--mqtt mqtt://127.0.0.1:$MQTT_PORT"
    echo "mosquitto on 127.0.0.1:$MQTT_PORT. Subscribe with:"
    echo "  mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t 'sec1000/#' -v"
else
    echo "mosquitto is not installed: the MQTT face stays off (scripts/install-dependencies.sh installs it)."
fi
# shellcheck disable=SC2086
$SWIFT run sec1000 bridge --simulate --listen 0.0.0.0:"$PORT" --http "$HTTP" $MQTT_ARGS
