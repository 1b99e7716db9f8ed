#!/usr/bin/env bash
# The bridge's Modbus TCP performance, next to a minimal libmodbus server, in one run.
#
#   Benchmarks/load/run.sh            the comparison table (see Docs/performance.md)
#   Benchmarks/load/run.sh memory     memory flatness of the bridge under a long load
#   Benchmarks/load/run.sh profile    where the bridge's CPU goes (perf record under 8 connections)
#   Benchmarks/load/run.sh build      only build the three programs
#
# Environment (defaults in brackets):
#   DURATION [5]          measured seconds per run
#   WARMUP [1]            warm-up seconds before each measured window
#   CONNECTIONS [1 8 64]  connection counts for the 22-register read of block A
#   WIDE_CONNECTIONS [8]  connections for the 28- and 125-register reads
#   PINNING [pinned unpinned]   pinned: client and server both on CPU $PIN_CPU; unpinned: free
#   PIN_CPU [0]           the CPU of the pinned runs
#   REPEAT [1]            runs of each (configuration, server), alternating bridge and reference;
#                         the table shows the run with the median req/s
#   REQUESTS [10000000]   memory mode: good responses to drive through the bridge
#   MEMORY_CONNECTIONS [64]   memory mode: connections
#   RSS_EVERY [1]         memory mode: seconds between RSS samples
#   BRIDGE                a sec1000 binary to use instead of building one
#   SCRATCH_PATH [<repo>/.build-release]   swift build --scratch-path for the release build
#   BRIDGE_REV            build this committed revision (git archive into BUILD_DIR) instead of
#                         the working tree, e.g. BRIDGE_REV=HEAD
#   BUILD_DIR [Benchmarks/load/.build-bench]   where the C programs and results go
#   PORT_BASE [random in 16000-16899]   first TCP port tried; each server gets a fresh one
set -euo pipefail

MODE=${1:-bench}
case "$MODE" in
bench | memory | profile | build) ;;
-h | --help | help)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 0
    ;;
*)
    echo "usage: $0 [bench|memory|profile|build]" >&2
    exit 2
    ;;
esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$HERE/.build-bench}
SCRATCH_PATH=${SCRATCH_PATH:-$ROOT/.build-release}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNECTIONS=${CONNECTIONS:-1 8 64}
WIDE_CONNECTIONS=${WIDE_CONNECTIONS:-8}
PINNING=${PINNING:-pinned unpinned}
PIN_CPU=${PIN_CPU:-0}
REPEAT=${REPEAT:-1}
REQUESTS=${REQUESTS:-10000000}
MEMORY_CONNECTIONS=${MEMORY_CONNECTIONS:-64}
RSS_EVERY=${RSS_EVERY:-1}
PORT=${PORT_BASE:-$((16000 + RANDOM % 900))}

LOAD=$BUILD_DIR/modbus-load
REFERENCE=$BUILD_DIR/reference-server
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=$BUILD_DIR/results/$MODE-$STAMP
mkdir -p "$RESULTS"

say() { printf '%s\n' "$*" >&2; }
die() {
    say "run.sh: $*"
    exit 1
}

# ---- servers: started one at a time, always stopped on the way out -----------------------

SERVER_PID=
SERVER_PORT=

stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        # Bounded wait for a clean exit, then SIGKILL.
        for _ in $(seq 100); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.05
        done
        kill -0 "$SERVER_PID" 2>/dev/null && kill -KILL "$SERVER_PID" 2>/dev/null
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT
trap 'stop_server; exit 143' TERM

# A port nobody listens on, from PORT upwards (16000-16999).
next_port() {
    while :; do
        PORT=$((PORT + 1))
        ((PORT > 16999)) && PORT=16000
        if ! ss -Htan "( sport = :$PORT or dport = :$PORT )" 2>/dev/null | grep -q .; then
            SERVER_PORT=$PORT
            return
        fi
    done
}

# start_server bridge|reference pinned|unpinned LOGFILE
start_server() {
    local kind=$1 pinning=$2 log=$3
    local -a pin=()
    [[ "$pinning" == pinned ]] && pin=(taskset -c "$PIN_CPU")
    next_port
    case "$kind" in
    bridge)
        # Every connection comes from 127.0.0.1: the per-address limit (16 by default) must let 64 in.
        "${pin[@]}" "$BRIDGE" bridge --simulate --listen "127.0.0.1:$SERVER_PORT" --interval 10 \
            --max-connections 200 --max-connections-per-address 200 --log-level notice >"$log" 2>&1 &
        ;;
    reference)
        "${pin[@]}" "$REFERENCE" 127.0.0.1 "$SERVER_PORT" >"$log" 2>&1 &
        ;;
    esac
    SERVER_PID=$!
}

# Polls until the server accepts a connection and answers a read of COUNT registers from
# ADDRESS with data (the bridge answers block A with 0x0B until its first good poll).
# Bounded: 30 s in all; each probe gives up after 1 s.
wait_ready() {
    local address=$1 count=$2 deadline=$((SECONDS + 30)) out status
    while :; do
        kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited during start-up (see its log)"
        status=0
        out=$("$LOAD" --probe -p "$SERVER_PORT" -a "$address" -n "$count" -T 1) || status=$?
        ((status == 0)) && return 0
        ((SECONDS >= deadline)) && die "server on port $SERVER_PORT not ready after 30 s: $out"
        sleep 0.05
    done
}

# ---- build --------------------------------------------------------------------------------

build() {
    mkdir -p "$BUILD_DIR"
    say "== building the load generator and the reference server in $BUILD_DIR"
    gcc -O2 -Wall -Wextra -pthread -o "$LOAD" "$HERE/modbus-load.c"
    # shellcheck disable=SC2046
    gcc -O2 -Wall -Wextra -o "$REFERENCE" "$HERE/reference-server.c" $(pkg-config --cflags --libs libmodbus)
    if [[ -n "${BRIDGE:-}" ]]; then
        say "== using BRIDGE=$BRIDGE"
        BRIDGE_DESCRIPTION="$BRIDGE (given with BRIDGE=)"
    elif [[ -n "${BRIDGE_REV:-}" ]]; then
        # A committed revision, exported with git archive: a reproducible bridge even while
        # the working tree is being edited.
        local sha source
        sha=$(cd "$ROOT" && git rev-parse --short "$BRIDGE_REV^{commit}") || die "no revision $BRIDGE_REV"
        source=$BUILD_DIR/rev-$sha
        if [[ ! -f "$source/Package.swift" ]]; then
            mkdir -p "$source"
            (cd "$ROOT" && git archive "$sha") | tar -x -C "$source"
            [[ -f "$ROOT/Package.resolved" ]] && cp "$ROOT/Package.resolved" "$source/"
        fi
        say "== building the bridge at $sha: swift build -c release in $source (a first build takes minutes)"
        if ! (cd "$source" && swift build -c release --scratch-path "$source/.build-release") >"$RESULTS/swift-build.log" 2>&1; then
            tail -30 "$RESULTS/swift-build.log" >&2
            die "swift build failed (log: $RESULTS/swift-build.log)"
        fi
        BRIDGE=$(cd "$source" && swift build -c release --scratch-path "$source/.build-release" --show-bin-path)/sec1000
        BRIDGE_DESCRIPTION="revision $sha (git archive, $source)"
    else
        say "== building the bridge: swift build -c release --scratch-path $SCRATCH_PATH (a first build takes minutes)"
        if ! (cd "$ROOT" && swift build -c release --scratch-path "$SCRATCH_PATH") >"$RESULTS/swift-build.log" 2>&1; then
            tail -30 "$RESULTS/swift-build.log" >&2
            die "swift build failed (log: $RESULTS/swift-build.log)"
        fi
        BRIDGE=$(cd "$ROOT" && swift build -c release --scratch-path "$SCRATCH_PATH" --show-bin-path)/sec1000
    fi
    [[ -x "$BRIDGE" ]] || die "no bridge binary at $BRIDGE"
}

describe_machine() {
    local cpu
    cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: $(nproc) CPUs ($cpu), $(uname -sr)"
    if [[ -n "${BRIDGE_DESCRIPTION:-}" ]]; then
        echo "bridge: $BRIDGE_DESCRIPTION"
    else
        local dirty=
        (cd "$ROOT" && git diff --quiet HEAD -- Sources Package.swift 2>/dev/null &&
            [[ -z "$(git ls-files --others --exclude-standard -- Sources)" ]]) || dirty=" + uncommitted changes in Sources"
        echo "bridge: working tree at $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$dirty ($BRIDGE)"
    fi
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# ---- one measured run -----------------------------------------------------------------------

# measure SERVER PINNING CONFIG_NAME ADDRESS COUNT CONNECTIONS REPETITION
measure() {
    local server=$1 pinning=$2 config=$3 address=$4 count=$5 connections=$6 repetition=$7
    local -a pin=()
    [[ "$pinning" == pinned ]] && pin=(taskset -c "$PIN_CPU")
    local name="$pinning.$config.$server.$repetition"
    start_server "$server" "$pinning" "$RESULTS/$name.server.log"
    wait_ready "$address" "$count"
    local line
    line=$("${pin[@]}" "$LOAD" -H 127.0.0.1 -p "$SERVER_PORT" -c "$connections" -d "$DURATION" -w "$WARMUP" \
        -a "$address" -n "$count" -P "$SERVER_PID" -l "$name" | tee "$RESULTS/$name.out" | grep '^RESULT ')
    stop_server
    echo "$line pinning=$pinning config=$config server=$server repetition=$repetition" >>"$RESULTS/results.txt"
    say "   $(tail -1 "$RESULTS/$name.out")"
}

# ---- the table ------------------------------------------------------------------------------

print_table() {
    awk '
    function field(key,   i, kv) {
        for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) return substr($i, length(key) + 2) }
        return ""
    }
    {
        n++
        pin[n] = field("pinning"); cfg[n] = field("config"); srv[n] = field("server")
        rps[n] = field("rps"); p50[n] = field("p50_us"); p90[n] = field("p90_us"); p99[n] = field("p99_us")
        mx[n] = field("max_us"); err[n] = field("errors"); cpu[n] = field("server_cpu_us_per_req")
        hwm[n] = field("server_hwm_kib"); gen[n] = field("client_cpu_us_per_req")
        run = pin[n] SUBSEP cfg[n] SUBSEP srv[n]
        if (!(run in runs)) { order[++keys] = run; runs[run] = 0 }
        member[run, ++runs[run]] = n
        total_errors[run] += err[n]
    }
    END {
        # The run with the median req/s of each (pinning, configuration, server).
        for (k = 1; k <= keys; k++) {
            run = order[k]; m = runs[run]
            for (i = 1; i <= m; i++) sorted[i] = member[run, i]
            for (i = 2; i <= m; i++)
                for (j = i; j > 1 && rps[sorted[j - 1]] + 0 > rps[sorted[j]] + 0; j--) {
                    t = sorted[j]; sorted[j] = sorted[j - 1]; sorted[j - 1] = t
                }
            pick[run] = sorted[int((m + 1) / 2)]
        }
        print "| pinning | configuration | server | req/s | p50 µs | p90 µs | p99 µs | max µs | errors | server CPU µs/req | peak RSS MiB | generator CPU µs/req |"
        print "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for (k = 1; k <= keys; k++) {
            i = pick[order[k]]
            printf "| %s | %s | %s | %.0f | %.1f | %.1f | %.1f | %.1f | %d | %.2f | %.1f | %.2f |\n",
                pin[i], cfg[i], srv[i], rps[i], p50[i], p90[i], p99[i], mx[i], total_errors[order[k]], cpu[i], hwm[i] / 1024, gen[i]
            pair = pin[i] SUBSEP cfg[i]
            if (!(pair in seen)) { seen[pair] = 1; pairs[++npairs] = pair }
            if (srv[i] == "bridge") { brps[pair] = rps[i]; bcpu[pair] = cpu[i] } else { rrps[pair] = rps[i]; rcpu[pair] = cpu[i] }
        }
        print ""
        print "| pinning | configuration | throughput bridge/reference | CPU per request bridge/reference |"
        print "|---|---|---:|---:|"
        for (k = 1; k <= npairs; k++) {
            pair = pairs[k]; split(pair, part, SUBSEP)
            if ((pair in brps) && (pair in rrps) && rrps[pair] > 0 && rcpu[pair] > 0)
                printf "| %s | %s | %.2f | %.2f |\n", part[1], part[2], brps[pair] / rrps[pair], bcpu[pair] / rcpu[pair]
            else
                printf "| %s | %s | – (reference only) | – |\n", part[1], part[2]
        }
    }' "$1"
}

# ---- modes ----------------------------------------------------------------------------------

run_bench() {
    build
    {
        describe_machine
        echo "per run: ${WARMUP} s warm-up, ${DURATION} s measured; closed loop, function 03, unit 1; each server started afresh"
        if ((REPEAT > 1)); then
            echo "each (configuration, server) run $REPEAT times, bridge and reference alternating; the table shows the run with the median req/s"
        fi
    } | tee "$RESULTS/machine.txt" >&2
    : >"$RESULTS/results.txt"
    # (name address count connections servers)
    local -a configs=()
    for c in $CONNECTIONS; do configs+=("A22x$c 0 22 $c bridge,reference"); done
    configs+=("A28x$WIDE_CONNECTIONS 0 28 $WIDE_CONNECTIONS bridge,reference")
    configs+=("R125x$WIDE_CONNECTIONS 0 125 $WIDE_CONNECTIONS reference")
    for pinning in $PINNING; do
        for entry in "${configs[@]}"; do
            read -r name address count connections servers <<<"$entry"
            say "== $pinning, $name: $connections connection(s) reading $count registers from $address"
            for ((repetition = 1; repetition <= REPEAT; repetition++)); do
                for server in ${servers//,/ }; do
                    measure "$server" "$pinning" "$name" "$address" "$count" "$connections" "$repetition"
                done
            done
        done
    done
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RESULTS/machine.txt" >&2
    {
        echo
        cat "$RESULTS/machine.txt"
        echo
        echo "Configurations: A22xN = N connections reading block A (22 registers from 0);"
        echo "A28xN = all of block A (28 registers, the largest block the bridge has);"
        echo "R125xN = 125 registers from 0, reference server only (no bridge block holds 125)."
        echo "pinned = client and server both on CPU $PIN_CPU (taskset); unpinned = scheduler's choice."
        echo
        print_table "$RESULTS/results.txt"
    } | tee "$RESULTS/table.md"
    say ""
    say "raw results: $RESULTS/results.txt; table: $RESULTS/table.md"
    if awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^errors=/ && $i != "errors=0") bad = 1 } END { exit !bad }' "$RESULTS/results.txt"; then
        die "some runs had errors (see the errors column)"
    fi
}

run_memory() {
    build
    {
        describe_machine
        echo "memory mode: $MEMORY_CONNECTIONS connections, $REQUESTS good requests after ${WARMUP} s warm-up, VmRSS every ${RSS_EVERY} s"
    } | tee "$RESULTS/machine.txt" >&2
    start_server bridge unpinned "$RESULTS/bridge.server.log"
    wait_ready 0 22
    local rss_before_warmup
    rss_before_warmup=$(awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status")
    say "== driving the bridge (pid $SERVER_PID, port $SERVER_PORT) with $REQUESTS requests"
    "$LOAD" -H 127.0.0.1 -p "$SERVER_PORT" -c "$MEMORY_CONNECTIONS" -d 0 -w "$WARMUP" -a 0 -n 22 \
        -r "$REQUESTS" -P "$SERVER_PID" -s "$RSS_EVERY" -l memory \
        2> >(tee "$RESULTS/rss-samples.txt" >&2) | tee "$RESULTS/memory.out"
    stop_server
    local line
    line=$(grep '^RESULT ' "$RESULTS/memory.out")
    awk -v before="$rss_before_warmup" -v requests="$REQUESTS" '
    function field(key,   i, kv) {
        for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) return substr($i, length(key) + 2) }
        return ""
    }
    {
        start = field("server_rss_start_kib"); end = field("server_rss_end_kib")
        mx = field("server_rss_max_kib"); mn = field("server_rss_min_kib")
        printf "\nmemory mode: %s good requests over %.1f s (%.0f req/s), %s errors, %s connections\n",
            field("requests"), field("seconds"), field("rps"), field("errors"), field("connections")
        done = field("requests") + 0
        per_request = done > 0 ? (end - start) * 1024 / done : 0
        printf "bridge VmRSS: %.1f MiB before warm-up, %.1f MiB at start (after warm-up), %.1f MiB at end; growth %+.1f MiB (%+d KiB, %.4f bytes/request); min %.1f, max %.1f MiB; peak (VmHWM) %.1f MiB\n",
            before / 1024, start / 1024, end / 1024, (end - start) / 1024, end - start, per_request,
            mn / 1024, mx / 1024, field("server_hwm_kib") / 1024
        printf "latency p50 %s µs, p99 %s µs, max %s µs; bridge CPU %s µs/request\n",
            field("p50_us"), field("p99_us"), field("max_us"), field("server_cpu_us_per_req")
    }' <<<"$line" | tee "$RESULTS/memory.md"
    say "samples: $RESULTS/rss-samples.txt"
}

run_profile() {
    command -v perf >/dev/null || die "perf is not installed"
    build
    describe_machine | tee "$RESULTS/machine.txt" >&2
    start_server bridge unpinned "$RESULTS/bridge.server.log"
    wait_ready 0 22
    say "== profiling the bridge (pid $SERVER_PID) under 8 connections for $DURATION s"
    "$LOAD" -H 127.0.0.1 -p "$SERVER_PORT" -c 8 -d "$DURATION" -w "$WARMUP" -a 0 -n 22 -P "$SERVER_PID" \
        -l profile >"$RESULTS/profile.out" &
    local load_pid=$!
    # perf samples for as long as the generator runs (warm-up included: the bridge serves the same requests).
    perf record -F 2999 --call-graph dwarf,16384 -p "$SERVER_PID" -o "$RESULTS/perf.data" -- \
        sleep "$(awk -v w="$WARMUP" -v d="$DURATION" 'BEGIN { print w + d }')" \
        >"$RESULTS/perf-record.log" 2>&1 || die "perf record failed (see $RESULTS/perf-record.log)"
    wait "$load_pid"
    stop_server
    tail -1 "$RESULTS/profile.out"
    echo
    echo "== share of the bridge's samples by object (kernel = system calls, TCP/IP, scheduling)"
    perf report -i "$RESULTS/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep '%' | head -12
    echo
    echo "== functions outside the kernel, inclusive (children), top 40"
    perf report -i "$RESULTS/perf.data" --children --sort dso,symbol --stdio -g none 2>/dev/null |
        grep '%' | grep -v '\[k\]' | head -40 | cut -c1-200
    echo
    echo "perf data: $RESULTS/perf.data (perf report -i ...)"
}

case "$MODE" in
bench) run_bench ;;
memory) run_memory ;;
profile) run_profile ;;
build) build && say "bridge: $BRIDGE" && say "load generator: $LOAD" && say "reference server: $REFERENCE" ;;
esac
