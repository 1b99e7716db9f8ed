# Sourced (POSIX sh): start_mosquitto DIR starts a mosquitto of its own on a free loopback port,
# anonymous and without persistence, its configuration and log in DIR; sets MQTT_PORT and BROKER_PID.
start_mosquitto() {
    # A free port: bind port 0 and read it back.
    MQTT_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    {
        echo "listener $MQTT_PORT 127.0.0.1"
        echo "allow_anonymous true"
        echo "persistence false"
        [ "$(id -u)" = 0 ] && echo "user root"
    } > "$1/mosquitto.conf"
    /usr/sbin/mosquitto -c "$1/mosquitto.conf" > "$1/mosquitto.log" 2>&1 &
    BROKER_PID=$!
}
