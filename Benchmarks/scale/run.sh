#!/usr/bin/env bash
# The polling core by device count: threads, memory and CPU of N devices (Docs/performance.md).
#
#   Benchmarks/scale/run.sh           N = 1, 100, 247 and 1000 devices, every 10 s for 60 s each
#   Benchmarks/scale/run.sh bridge    the whole `sec1000 bridge` (Modbus server included) with
#                                     N = 1, 50, 200 and 247 devices every 5 s, sampled from outside:
#                                     the set-up of the figures measured before the device services
#   Benchmarks/scale/run.sh build     only build
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
set -euo pipefail

MODE=${1:-bench}
case "$MODE" in
bench | bridge | build) ;;
-h | --help | help)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 0
    ;;
*)
    echo "usage: $0 [bench|bridge|build]" >&2
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
trap stop_simulators EXIT
trap 'stop_simulators; exit 130' INT
trap 'stop_simulators; exit 143' TERM

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

case "$MODE" in
bench) run_bench ;;
bridge) run_bridge ;;
build) build && say "sec1000: $SEC1000" && say "benchmark: $BENCH" ;;
esac
