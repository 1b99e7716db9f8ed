#!/usr/bin/env bash
# The polling core by device count: threads, memory and CPU of N devices (Docs/performance.md).
#
#   Benchmarks/scale/run.sh           N = 1, 100, 247 and 1000 devices, every 10 s for 60 s each
#   Benchmarks/scale/run.sh bridge    the whole `sec1000 bridge` (Modbus server included) with
#                                     N = 1, 50, 200 and 247 devices every 5 s, sampled from outside:
#                                     the set-up of the figures measured before the device services
#   Benchmarks/scale/run.sh build     only build
#   Benchmarks/scale/run.sh mqtt      the MQTT face (issue 11): mqtt-latency, mqtt-load, mqtt-outage
#   Benchmarks/scale/run.sh mqtt-latency   poll end to a subscriber's receipt: `sec1000 bridge --mqtt`,
#                                     1 device every 1 s for LATENCY_DURATION s, mosquitto_sub
#   Benchmarks/scale/run.sh mqtt-load      MQTT_DEVICES devices every INTERVAL s for MQTT_DURATION s:
#                                     sec1000-scale (no MQTT), sec1000-mqtt without and with MQTT
#   Benchmarks/scale/run.sh mqtt-outage    MQTT_DEVICES devices with MQTT; the broker killed after
#                                     60 s for OUTAGE s, then started again for 60 s; VmRSS every 10 s
#
# Each run starts SIMULATORS fresh `sec1000 simulate` processes (device i polls simulator
# i mod SIMULATORS) and one `sec1000-scale` process (Sources/sec1000-scale), which builds the
# bridge's DeviceServices with BridgeRuntime.pollingCore, runs them in a ServiceGroup without the
# Modbus server, and measures itself: /proc/self/task, /proc/self/status, getrusage, polls done.
#
# Environment (defaults in brackets):
#   DEVICES [1 100 247 1000]   device counts, one run each
#   INTERVAL [10]         seconds between polls of one device
#   DURATION [60]         seconds per run (e.g. DURATION=15 for a quick run)
#   SIMULATORS [1]        simulator processes per run
#   SAMPLE_EVERY [0.1]    seconds between samples of threads and VmRSS
#   BRIDGE_DEVICES [1 50 200 247]   bridge mode: device counts (unit ids 1 to N, so at most 247)
#   BRIDGE_INTERVAL [5]   bridge mode: seconds between polls
#   BRIDGE_DURATION [30]  bridge mode: seconds per run
#   SEC1000               a sec1000 binary for the simulators instead of building one
#   SCRATCH_PATH [<repo>/.build-release]   swift build --scratch-path of sec1000's release build
#   BUILD_DIR [Benchmarks/scale/.build-bench]   where results go
#   PORT_BASE [random in 17000-17899]   first TCP port tried for the simulators
#   MQTT_DEVICES [1000]   mqtt-load, mqtt-outage: devices (sec1000-mqtt splits them over runtimes of 200)
#   MQTT_DURATION [120]   mqtt-load: seconds per run
#   LATENCY_DURATION [300]   mqtt-latency: seconds (one poll a second)
#   OUTAGE [600]          mqtt-outage: seconds without a broker (e.g. OUTAGE=60 for a quick run)
#   MQTT_LEGS [scale runtimes mqtt]   mqtt-load: which runs (e.g. MQTT_LEGS=mqtt)
#   MQTT_EXTRA []         mqtt-load: more sec1000-mqtt options for the MQTT run (--no-discovery, --trim-at S)
#   MOSQUITTO [/usr/sbin/mosquitto]   the broker, started on a free loopback port, persistence off
set -euo pipefail

MODE=${1:-bench}
case "$MODE" in
bench | bridge | build | mqtt | mqtt-latency | mqtt-load | mqtt-outage) ;;
-h | --help | help)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 0
    ;;
*)
    echo "usage: $0 [bench|bridge|build|mqtt|mqtt-latency|mqtt-load|mqtt-outage]" >&2
    exit 2
    ;;
esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$HERE/.build-bench}
SCRATCH_PATH=${SCRATCH_PATH:-$ROOT/.build-release}
DEVICES=${DEVICES:-1 100 247 1000}
INTERVAL=${INTERVAL:-10}
DURATION=${DURATION:-60}
SIMULATORS=${SIMULATORS:-1}
SAMPLE_EVERY=${SAMPLE_EVERY:-0.1}
BRIDGE_DEVICES=${BRIDGE_DEVICES:-1 50 200 247}
BRIDGE_INTERVAL=${BRIDGE_INTERVAL:-5}
BRIDGE_DURATION=${BRIDGE_DURATION:-30}
PORT=${PORT_BASE:-$((17000 + RANDOM % 900))}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=$BUILD_DIR/results/$MODE-$STAMP
mkdir -p "$RESULTS"

say() { printf '%s\n' "$*" >&2; }
die() {
    say "run.sh: $*"
    exit 1
}

# ---- simulators: started for each run, always stopped on the way out ----------------------

SIMULATOR_PIDS=()
SIMULATOR_PORTS=()

stop_simulators() {
    local pid
    for pid in "${SIMULATOR_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${SIMULATOR_PIDS[@]}"; do
        # Bounded wait for a clean exit, then SIGKILL.
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null || true
    done
    SIMULATOR_PIDS=()
    SIMULATOR_PORTS=()
}
BROKER_PID=
stop_broker() {
    [[ -n "$BROKER_PID" ]] || return 0
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=
}
trap 'stop_simulators; stop_broker' EXIT
trap 'stop_simulators; stop_broker; exit 130' INT
trap 'stop_simulators; stop_broker; exit 143' TERM

# A port nobody uses, from PORT upwards (17000-17999).
next_port() {
    while :; do
        PORT=$((PORT + 1))
        ((PORT > 17999)) && PORT=17000
        if ! ss -Htan "( sport = :$PORT or dport = :$PORT )" 2>/dev/null | grep -q .; then
            return
        fi
    done
}

# start_simulators COUNT LOGPREFIX: each waits until it says it listens (bounded: 30 s).
start_simulators() {
    local count=$1 prefix=$2 i log deadline
    for ((i = 0; i < count; i++)); do
        next_port
        log=$prefix.simulator-$i.log
        "$SEC1000" simulate --listen "127.0.0.1:$PORT" --log-level warning >"$log" 2>&1 &
        SIMULATOR_PIDS+=($!)
        SIMULATOR_PORTS+=("$PORT")
        deadline=$((SECONDS + 30))
        until grep -qs '^simulated SEC1000 on' "$log"; do
            kill -0 "${SIMULATOR_PIDS[-1]}" 2>/dev/null || die "simulator exited at start-up (see $log)"
            ((SECONDS < deadline)) || die "simulator not listening after 30 s (see $log)"
            sleep 0.05
        done
    done
}

# User + system CPU seconds of a process so far (/proc/PID/stat, in clock ticks).
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"
}

# ---- build --------------------------------------------------------------------------------

build() {
    if [[ -n "${SEC1000:-}" ]]; then
        say "== using SEC1000=$SEC1000 for the simulators"
    else
        say "== building sec1000 (the simulators): swift build -c release --scratch-path $SCRATCH_PATH"
        if ! (cd "$ROOT" && swift build -c release --scratch-path "$SCRATCH_PATH" --product sec1000) >"$RESULTS/swift-build-sec1000.log" 2>&1; then
            tail -30 "$RESULTS/swift-build-sec1000.log" >&2
            die "swift build failed (log: $RESULTS/swift-build-sec1000.log)"
        fi
        SEC1000=$(cd "$ROOT" && swift build -c release --scratch-path "$SCRATCH_PATH" --show-bin-path)/sec1000
    fi
    # The nested package pins what the main one pins.
    [[ -f "$ROOT/Package.resolved" && ! -f "$HERE/Package.resolved" ]] && cp "$ROOT/Package.resolved" "$HERE/"
    say "== building the benchmark: swift build -c release in $HERE (a first build takes minutes)"
    if ! (cd "$HERE" && swift build -c release) >"$RESULTS/swift-build-scale.log" 2>&1; then
        tail -30 "$RESULTS/swift-build-scale.log" >&2
        die "swift build failed (log: $RESULTS/swift-build-scale.log)"
    fi
    BENCH=$(cd "$HERE" && swift build -c release --show-bin-path)/sec1000-scale
    MQTT_BENCH=$(cd "$HERE" && swift build -c release --show-bin-path)/sec1000-mqtt
    [[ -x "$SEC1000" ]] || die "no sec1000 binary at $SEC1000"
    [[ -x "$BENCH" ]] || die "no benchmark binary at $BENCH"
}

describe_machine() {
    local cpu dirty=
    cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    (cd "$ROOT" && git diff --quiet HEAD -- Sources Package.swift Benchmarks/scale 2>/dev/null) || dirty=" + uncommitted changes"
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: $(nproc) CPUs ($cpu), $(uname -sr)"
    echo "revision: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$dirty"
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# ---- the runs -----------------------------------------------------------------------------

run_bench() {
    build
    {
        describe_machine
        echo "per run: $SIMULATORS simulator process(es), every $INTERVAL s for $DURATION s, samples every $SAMPLE_EVERY s"
    } | tee "$RESULTS/machine.txt" >&2
    : >"$RESULTS/results.txt"
    local failed=0 n status line i sim_cpu_start sim_cpu
    for n in $DEVICES; do
        say "== $n device(s)"
        start_simulators "$SIMULATORS" "$RESULTS/n$n"
        local -a targets=()
        for i in "${!SIMULATOR_PORTS[@]}"; do targets+=(--simulator "127.0.0.1:${SIMULATOR_PORTS[$i]}"); done
        sim_cpu_start=0
        for i in "${SIMULATOR_PIDS[@]}"; do sim_cpu_start=$(awk -v a="$sim_cpu_start" -v b="$(cpu_seconds "$i")" 'BEGIN { print a + b }'); done
        status=0
        "$BENCH" --devices "$n" --interval "$INTERVAL" --duration "$DURATION" --sample-every "$SAMPLE_EVERY" \
            --samples "$RESULTS/n$n.samples" \
            "${targets[@]}" >"$RESULTS/n$n.out" 2>"$RESULTS/n$n.log" || status=$?
        sim_cpu=0
        for i in "${SIMULATOR_PIDS[@]}"; do sim_cpu=$(awk -v a="$sim_cpu" -v b="$(cpu_seconds "$i")" 'BEGIN { print a + b }'); done
        stop_simulators
        line=$(grep '^RESULT ' "$RESULTS/n$n.out") || die "no result for $n devices (see $RESULTS/n$n.log)"
        echo "$line simulator_cpu_s=$(awk -v a="$sim_cpu" -v b="$sim_cpu_start" 'BEGIN { printf "%.2f", a - b }') exit=$status" >>"$RESULTS/results.txt"
        say "   $(tail -1 "$RESULTS/n$n.log")"
        ((status == 0)) || failed=1
    done
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RESULTS/machine.txt" >&2
    {
        echo
        cat "$RESULTS/machine.txt"
        echo
        print_table "$RESULTS/results.txt"
    } | tee "$RESULTS/table.md"
    say ""
    say "raw results: $RESULTS/results.txt; table: $RESULTS/table.md"
    ((failed == 0)) || die "some runs missed polls or had failed attempts (see the polls columns and the n*.log files)"
}

print_table() {
    awk '
    function field(key,   i, kv) {
        for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) return substr($i, length(key) + 2) }
        return ""
    }
    BEGIN {
        print "| devices | polls done / expected | failed attempts | threads max | threads steady (min–max) | VmRSS steady MiB | VmHWM MiB | CPU % of one core | CPU µs per poll | sampler CPU s (included) | simulator CPU s |"
        print "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    }
    {
        printf "| %d | %d / %d | %d | %d | %d (%d–%d) | %.1f | %.1f | %.2f | %.0f | %.3f | %.2f |\n",
            field("devices"), field("polls_good"), field("polls_expected"), field("failed_attempts"),
            field("threads_max"), field("threads_steady_median"), field("threads_steady_min"), field("threads_steady_max"),
            field("rss_steady_median_kib") / 1024, field("hwm_kib") / 1024, field("cpu_percent"),
            field("cpu_us_per_poll"), field("sampler_cpu_s"), field("simulator_cpu_s")
    }' "$1"
}

# The whole bridge, as the figures before the device services were taken: one simulator (logging
# each request, to count the polls), `sec1000 bridge` with N devices on it, its threads and VmRSS
# sampled from /proc/PID every SAMPLE_EVERY s, its CPU from /proc/PID/stat.
run_bridge() {
    build
    {
        describe_machine
        echo "bridge mode: sec1000 bridge, 1 simulator, every $BRIDGE_INTERVAL s for $BRIDGE_DURATION s, samples every $SAMPLE_EVERY s"
    } | tee "$RESULTS/machine.txt" >&2
    : >"$RESULTS/results.txt"
    local n i pid log cpu_start cpu_end started threads rss
    for n in $BRIDGE_DEVICES; do
        ((n >= 1 && n <= 247)) || die "BRIDGE_DEVICES: $n is not a unit id count (1 to 247)"
        say "== sec1000 bridge with $n device(s)"
        next_port
        log=$RESULTS/bridge-n$n.simulator.log
        "$SEC1000" simulate --listen "127.0.0.1:$PORT" --log-level info >"$log" 2>&1 &
        SIMULATOR_PIDS+=($!)
        local simulator_port=$PORT deadline=$((SECONDS + 30))
        until grep -qs '^simulated SEC1000 on' "$log"; do
            ((SECONDS < deadline)) || die "simulator not listening after 30 s (see $log)"
            sleep 0.05
        done
        local -a devices=()
        for ((i = 1; i <= n; i++)); do devices+=(--device "127.0.0.1:$simulator_port@$i"); done
        next_port
        "$SEC1000" bridge "${devices[@]}" --listen "127.0.0.1:$PORT" --interval "$BRIDGE_INTERVAL" \
            --log-level warning >"$RESULTS/bridge-n$n.log" 2>&1 &
        pid=$!
        SIMULATOR_PIDS+=("$pid")
        cpu_start=$(cpu_seconds "$pid")
        started=$SECONDS
        : >"$RESULTS/bridge-n$n.samples"
        while ((SECONDS - started < BRIDGE_DURATION)); do
            kill -0 "$pid" 2>/dev/null || die "the bridge exited (see $RESULTS/bridge-n$n.log)"
            threads=$(find "/proc/$pid/task" -mindepth 1 -maxdepth 1 | wc -l)
            rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
            echo "$((SECONDS - started)) $threads $rss" >>"$RESULTS/bridge-n$n.samples"
            sleep "$SAMPLE_EVERY"
        done
        cpu_end=$(cpu_seconds "$pid")
        local hwm polls
        hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
        stop_simulators
        polls=$(grep -c 'command=read measurements' "$log" || true)
        awk -v n="$n" -v interval="$BRIDGE_INTERVAL" -v duration="$BRIDGE_DURATION" -v hwm="$hwm" -v polls="$polls" \
            -v cpu="$(awk -v a="$cpu_end" -v b="$cpu_start" 'BEGIN { print a - b }')" '
            { t[NR] = $1; th[NR] = $2; rss[NR] = $3; if ($2 > max) max = $2 }
            END {
                # Steady: after the first interval; the median of those samples.
                for (i = 1; i <= NR; i++) if (t[i] >= interval) { m++; s[m] = th[i]; r[m] = rss[i] }
                for (i = 2; i <= m; i++) for (j = i; j > 1 && s[j - 1] > s[j]; j--) { x = s[j]; s[j] = s[j - 1]; s[j - 1] = x }
                for (i = 2; i <= m; i++) for (j = i; j > 1 && r[j - 1] > r[j]; j--) { x = r[j]; r[j] = r[j - 1]; r[j - 1] = x }
                printf "RESULT mode=bridge devices=%d interval_s=%s duration_s=%s samples=%d threads_max=%d threads_steady_median=%d threads_steady_min=%d threads_steady_max=%d rss_steady_median_kib=%d hwm_kib=%d cpu_s=%.2f cpu_percent=%.3f polls_seen=%d\n",
                    n, interval, duration, NR, max, s[int((m + 1) / 2)], s[1], s[m], r[int((m + 1) / 2)], hwm, cpu, 100 * cpu / duration, polls
            }' "$RESULTS/bridge-n$n.samples" | tee -a "$RESULTS/results.txt" >&2
    done
    {
        echo
        cat "$RESULTS/machine.txt"
        echo
        echo "| devices | threads max | threads steady (min–max) | VmRSS steady MiB | VmHWM MiB | CPU % of one core | polls seen by the simulator |"
        echo "|---:|---:|---:|---:|---:|---:|---:|"
        awk '
        function field(key,   i, kv) {
            for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) return substr($i, length(key) + 2) }
            return ""
        }
        { printf "| %d | %d | %d (%d–%d) | %.1f | %.1f | %.2f | %d |\n", field("devices"), field("threads_max"),
            field("threads_steady_median"), field("threads_steady_min"), field("threads_steady_max"),
            field("rss_steady_median_kib") / 1024, field("hwm_kib") / 1024, field("cpu_percent"), field("polls_seen") }' "$RESULTS/results.txt"
    } | tee "$RESULTS/table.md"
}

# ---- the MQTT face (issue 11) -------------------------------------------------------------

MQTT_DEVICES=${MQTT_DEVICES:-1000}
MQTT_DURATION=${MQTT_DURATION:-120}
LATENCY_DURATION=${LATENCY_DURATION:-300}
OUTAGE=${OUTAGE:-600}
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
BROKER_PORT=

# start_broker LOGPREFIX: mosquitto on BROKER_PORT (a free one the first time, the same one again
# after an outage), anonymous, without persistence; waits until it listens (bounded: 30 s).
start_broker() {
    local prefix=$1 deadline
    if [[ -z "$BROKER_PORT" ]]; then
        next_port
        BROKER_PORT=$PORT
    fi
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n' \
        "$BROKER_PORT" >"$prefix.mosquitto.conf"
    "$MOSQUITTO" -c "$prefix.mosquitto.conf" >>"$prefix.mosquitto.log" 2>&1 &
    BROKER_PID=$!
    deadline=$((SECONDS + 30))
    until ss -Htln "( sport = :$BROKER_PORT )" 2>/dev/null | grep -q .; do
        kill -0 "$BROKER_PID" 2>/dev/null || die "mosquitto exited at start-up (see $prefix.mosquitto.log)"
        ((SECONDS < deadline)) || die "mosquitto not listening after 30 s (see $prefix.mosquitto.log)"
        sleep 0.05
    done
}

# Latencies in ms, one a line, from `mosquitto_sub -F '%U %p'` lines (receipt time, state JSON):
# receipt minus the payload's poll_time (the poll's end, rounded to the millisecond).
latencies() {
    awk 'match($0, /"poll_time":[0-9.]+/) { t = substr($0, RSTART + 12, RLENGTH - 12); printf "%.3f\n", ($1 - t) * 1000 }' "$1"
}

# Count, p50, p99, max, min of a column of numbers.
percentiles() {
    sort -n "$1" | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "count=0"; exit }
        i50 = int(NR * 0.50 + 0.999999); i99 = int(NR * 0.99 + 0.999999)
        printf "count=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f min_ms=%.2f\n", NR, v[i50], v[i99], v[NR], v[1] }'
}

run_mqtt_latency() {
    {
        describe_machine
        echo "mqtt-latency: sec1000 bridge --mqtt, 1 device every 1 s for $LATENCY_DURATION s; mosquitto_sub -F '%U %p'"
    } | tee "$RESULTS/latency-machine.txt" >&2
    start_broker "$RESULTS/latency"
    start_simulators 1 "$RESULTS/latency"
    mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t 'sec1000/+/state' -F '%U %p' >"$RESULTS/latency.received" 2>"$RESULTS/latency.sub.log" &
    local sub=$! pid
    SIMULATOR_PIDS+=("$sub")
    next_port
    "$SEC1000" bridge --device "127.0.0.1:${SIMULATOR_PORTS[0]}" --listen "127.0.0.1:$PORT" --interval 1 \
        --mqtt "mqtt://127.0.0.1:$BROKER_PORT" --log-level warning >"$RESULTS/latency.bridge.log" 2>&1 &
    pid=$!
    SIMULATOR_PIDS+=("$pid")
    sleep "$LATENCY_DURATION"
    kill -0 "$pid" 2>/dev/null || die "the bridge exited (see $RESULTS/latency.bridge.log)"
    stop_simulators
    stop_broker
    latencies "$RESULTS/latency.received" >"$RESULTS/latency.ms"
    echo "RESULT mode=mqtt-latency $(percentiles "$RESULTS/latency.ms")" | tee -a "$RESULTS/results.txt"
}

# mqtt_load_run NAME ARGS...: one sec1000-mqtt run (or sec1000-scale), its RESULT line kept.
mqtt_load_run() {
    local name=$1 program=$2 status=0 i
    shift 2
    start_simulators "$SIMULATORS" "$RESULTS/$name"
    local -a targets=()
    for i in "${!SIMULATOR_PORTS[@]}"; do targets+=(--simulator "127.0.0.1:${SIMULATOR_PORTS[$i]}"); done
    "$program" --devices "$MQTT_DEVICES" --interval "$INTERVAL" "${targets[@]}" "$@" \
        >"$RESULTS/$name.out" 2>"$RESULTS/$name.log" || status=$?
    stop_simulators
    local line
    line=$(grep '^RESULT ' "$RESULTS/$name.out") || die "no result for $name (see $RESULTS/$name.log)"
    echo "$line run=$name exit=$status" >>"$RESULTS/results.txt"
    say "   $name: $(tail -1 "$RESULTS/$name.log")"
}

run_mqtt_load() {
    {
        describe_machine
        echo "mqtt-load: $MQTT_DEVICES devices, $SIMULATORS simulator(s), every $INTERVAL s for $MQTT_DURATION s per run"
    } | tee "$RESULTS/load-machine.txt" >&2
    local legs=" ${MQTT_LEGS:-scale runtimes mqtt} "
    if [[ $legs == *" scale "* ]]; then
        say "== sec1000-scale (the polling core, no Modbus server, no MQTT)"
        mqtt_load_run scale "$BENCH" --duration "$MQTT_DURATION" --sample-every "$SAMPLE_EVERY" --samples "$RESULTS/scale.samples"
    fi
    if [[ $legs == *" runtimes "* ]]; then
        say "== sec1000-mqtt without MQTT (runtimes of 200 devices, each with its Modbus server)"
        mqtt_load_run runtimes "$MQTT_BENCH" --duration "$MQTT_DURATION" --sample-every 1 --samples "$RESULTS/runtimes.samples"
    fi
    [[ $legs == *" mqtt "* ]] || return 0
    say "== sec1000-mqtt with MQTT (one MQTTFace and broker connection per runtime) ${MQTT_EXTRA:-}"
    start_broker "$RESULTS/load"
    # Every state, with its receipt time: the deliveries and their latency at this load.
    mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" -t 'bench/+/+/state' -F '%U %p' >"$RESULTS/load.received" 2>"$RESULTS/load.sub.log" &
    local sub=$!
    # shellcheck disable=SC2086 # MQTT_EXTRA is a list of options
    mqtt_load_run mqtt "$MQTT_BENCH" --broker "127.0.0.1:$BROKER_PORT" --duration "$MQTT_DURATION" --sample-every 1 \
        --samples "$RESULTS/mqtt.samples" ${MQTT_EXTRA:-}
    kill -TERM "$sub" 2>/dev/null || true
    wait "$sub" 2>/dev/null || true
    stop_broker
    latencies "$RESULTS/load.received" >"$RESULTS/load.ms"
    echo "RESULT mode=mqtt-load-latency devices=$MQTT_DEVICES $(percentiles "$RESULTS/load.ms")" | tee -a "$RESULTS/results.txt"
}

run_mqtt_outage() {
    local warmup=60 after=60 status=0 i pid
    {
        describe_machine
        echo "mqtt-outage: $MQTT_DEVICES devices every $INTERVAL s; broker up ${warmup} s, down $OUTAGE s, up $after s; samples every 10 s"
    } | tee "$RESULTS/outage-machine.txt" >&2
    start_broker "$RESULTS/outage"
    start_simulators "$SIMULATORS" "$RESULTS/outage"
    local -a targets=()
    for i in "${!SIMULATOR_PORTS[@]}"; do targets+=(--simulator "127.0.0.1:${SIMULATOR_PORTS[$i]}"); done
    "$MQTT_BENCH" --devices "$MQTT_DEVICES" --interval "$INTERVAL" "${targets[@]}" --broker "127.0.0.1:$BROKER_PORT" \
        --duration $((warmup + OUTAGE + after)) --sample-every 10 --samples "$RESULTS/outage.samples" \
        >"$RESULTS/outage.out" 2>"$RESULTS/outage.log" &
    pid=$!
    sleep "$warmup"
    say "== broker killed (SIGKILL) for $OUTAGE s"
    kill -KILL "$BROKER_PID"
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=
    sleep "$OUTAGE"
    say "== broker started again"
    start_broker "$RESULTS/outage"
    wait "$pid" || status=$?
    stop_simulators
    stop_broker
    grep '^RESULT ' "$RESULTS/outage.out" | sed "s/\$/ run=outage exit=$status/" >>"$RESULTS/results.txt"
    # Samples: t threads rss_kib cpu_s connected outbox_topics published losses.
    awk -v w="$warmup" -v o="$OUTAGE" '
        $1 < w { before = $3 }
        $1 >= w && $1 < w + o { n++; if (n == 1) first = $3; last = $3; if ($3 > max) max = $3; if ($6 > topics) topics = $6 }
        $1 >= w + o { after = $3; connected = $5; published = $7 }
        END { printf "RESULT mode=mqtt-outage outage_s=%d rss_before_kib=%d rss_outage_first_kib=%d rss_outage_last_kib=%d rss_outage_max_kib=%d outbox_topics_max=%d rss_after_kib=%d connected_after=%d published_end=%d\n",
            o, before, first, last, max, topics, after, connected, published }' "$RESULTS/outage.samples" | tee -a "$RESULTS/results.txt"
    say "$(tail -1 "$RESULTS/outage.log")"
}

case "$MODE" in
mqtt | mqtt-latency | mqtt-load | mqtt-outage)
    build
    : >>"$RESULTS/results.txt"
    case "$MODE" in
    mqtt-latency) run_mqtt_latency ;;
    mqtt-load) run_mqtt_load ;;
    mqtt-outage) run_mqtt_outage ;;
    mqtt) run_mqtt_latency && run_mqtt_load && run_mqtt_outage ;;
    esac
    say "results: $RESULTS/results.txt"
    exit 0
    ;;
esac

case "$MODE" in
bench) run_bench ;;
bridge) run_bridge ;;
build) build && say "sec1000: $SEC1000" && say "benchmark: $BENCH" ;;
esac
