#!/usr/bin/env bash
# The bridge's Modbus TCP performance, next to a minimal libmodbus server, in one run.
#
#   Benchmarks/load/run.sh            the comparison table (see Docs/performance.md)
#   Benchmarks/load/run.sh memory     memory flatness of the bridge under a long load
#   Benchmarks/load/run.sh profile    where the bridge's CPU goes (perf record under 8 connections)
#   Benchmarks/load/run.sh scrape     the bridge alone and the bridge scraped on /metrics, alternating
#   Benchmarks/load/run.sh http       the HTTP face with DEVICES devices: render time and added memory
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
#   SCRAPE_EVERY [0.1]    scrape mode: seconds between two GETs of /metrics (one curl, keep-alive)
#   DEVICES [247]         http mode: devices of the bridge, all on one `sec1000 simulate`
#   HTTP_REQUESTS [200]   http mode: timed GETs of /metrics and of /api/status, each
#   SETTLE [12]           http mode: seconds after every device has answered before measuring
set -euo pipefail

MODE=${1:-bench}
case "$MODE" in
bench | memory | profile | scrape | http | build) ;;
-h | --help | help)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 0
    ;;
*)
    echo "usage: $0 [bench|memory|profile|scrape|http|build]" >&2
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
SCRAPE_EVERY=${SCRAPE_EVERY:-0.1}
DEVICES=${DEVICES:-247}
HTTP_REQUESTS=${HTTP_REQUESTS:-200}
SETTLE=${SETTLE:-12}

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
HTTP_PORT=
SCRAPER_PID=
SIMULATOR_PID=

# Stops one process we started: SIGTERM, a bounded wait, then SIGKILL.
stop_pid() {
    local pid=$1
    [[ -n "$pid" ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null || true
}

stop_all() {
    stop_pid "$SCRAPER_PID"
    SCRAPER_PID=
    stop_server
    stop_pid "$SIMULATOR_PID"
    SIMULATOR_PID=
}

stop_server() {
    stop_pid "$SERVER_PID"
    SERVER_PID=
}
trap stop_all EXIT
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM

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

# start_server bridge|scraped|reference pinned|unpinned LOGFILE
# scraped: the bridge with its HTTP face on HTTP_PORT (scrape mode starts the scraper).
start_server() {
    local kind=$1 pinning=$2 log=$3
    local -a pin=() http=()
    [[ "$pinning" == pinned ]] && pin=(taskset -c "$PIN_CPU")
    if [[ "$kind" == scraped ]]; then
        next_port
        HTTP_PORT=$SERVER_PORT
        http=(--http "127.0.0.1:$HTTP_PORT")
    fi
    next_port
    case "$kind" in
    bridge | scraped)
        # Every connection comes from 127.0.0.1: the per-address limit (16 by default) must let 64 in.
        "${pin[@]}" "$BRIDGE" bridge --simulate --listen "127.0.0.1:$SERVER_PORT" --interval 10 \
            --max-connections 200 --max-connections-per-address 200 --log-level notice "${http[@]}" >"$log" 2>&1 &
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
    [[ "$server" == scraped ]] && start_scraper "$RESULTS/$name.scrapes"
    local line scrapes=
    line=$("${pin[@]}" "$LOAD" -H 127.0.0.1 -p "$SERVER_PORT" -c "$connections" -d "$DURATION" -w "$WARMUP" \
        -a "$address" -n "$count" -P "$SERVER_PID" -l "$name" | tee "$RESULTS/$name.out" | grep '^RESULT ')
    if [[ "$server" == scraped ]]; then
        stop_pid "$SCRAPER_PID"
        SCRAPER_PID=
        scrapes=$(scrape_summary "$RESULTS/$name.scrapes")
    fi
    stop_server
    echo "$line pinning=$pinning config=$config server=$server repetition=$repetition${scrapes:+ $scrapes}" >>"$RESULTS/results.txt"
    say "   $(tail -1 "$RESULTS/$name.out")${scrapes:+ [$scrapes]}"
}

# ---- the scraper: GET /metrics every SCRAPE_EVERY s, as Prometheus does, over one connection ----

# Waits (bounded, 30 s) until the face answers, then starts one curl that fetches /metrics at
# 1/SCRAPE_EVERY per second (curl --rate) until it is stopped, one "code seconds bytes" line each.
start_scraper() {
    local out=$1 deadline=$((SECONDS + 30)) per_minute
    until curl -fsS -o /dev/null "http://127.0.0.1:$HTTP_PORT/health/live" 2>/dev/null; do
        ((SECONDS >= deadline)) && die "the HTTP face on port $HTTP_PORT did not answer within 30 s"
        sleep 0.05
    done
    per_minute=$(awk -v s="$SCRAPE_EVERY" 'BEGIN { printf "%d", 60 / s + 0.5 }')
    # Line-buffered: the scraper is stopped with SIGTERM, and its lines must be in the file by then.
    stdbuf -oL curl -sS --rate "$per_minute/m" -o /dev/null -w '%{http_code} %{time_total} %{size_download}\n' \
        "http://127.0.0.1:$HTTP_PORT/metrics?scrape=[1-100000000]" >"$out" 2>/dev/null &
    SCRAPER_PID=$!
}

# "scrapes=N scrape_failures=F scrape_p50_ms=… scrape_p99_ms=… scrape_bytes=…" from a scraper's output.
scrape_summary() {
    sort -k2,2g "$1" | awk '
        { n++; if ($1 != 200) bad++; t[n] = $2 * 1000; bytes = $3 }
        END {
            if (n == 0) { print "scrapes=0 scrape_failures=0"; exit }
            printf "scrapes=%d scrape_failures=%d scrape_p50_ms=%.2f scrape_p99_ms=%.2f scrape_bytes=%d\n",
                n, bad, t[int((n + 1) / 2)], t[int(n * 0.99 + 0.999)], bytes
        }'
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
        if (srv[n] == "reference") nreference++
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
            if (srv[i] == "bridge") { brps[pair] = rps[i]; bcpu[pair] = cpu[i] } else if (srv[i] == "reference") { rrps[pair] = rps[i]; rcpu[pair] = cpu[i] }
        }
        if (nreference == 0) exit
        print ""
        print "| pinning | configuration | throughput bridge/reference | CPU per request bridge/reference |"
        print "|---|---|---:|---:|"
        for (k = 1; k <= npairs; k++) {
            pair = pairs[k]; split(pair, part, SUBSEP)
            if ((pair in brps) && (pair in rrps) && rrps[pair] > 0 && rcpu[pair] > 0)
                printf "| %s | %s | %.2f | %.2f |\n", part[1], part[2], brps[pair] / rrps[pair], bcpu[pair] / rcpu[pair]
            else if (pair in rrps)
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

# The cost of being scraped: per (pinning, configuration), the medians over the repetitions of
# req/s, p99 and server CPU per request, scraped and not, and their ratios (scraped / bridge).
print_scrape_ratios() {
    awk '
    function field(key,   i, kv) {
        for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) return substr($i, length(key) + 2) }
        return ""
    }
    function median(list,   n, v, i, j, t) {
        n = split(list, v, " ")
        for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
        return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    {
        pair = field("pinning") SUBSEP field("config"); srv = field("server")
        if (!(pair in seen)) { seen[pair] = 1; pairs[++npairs] = pair }
        rps[pair, srv] = rps[pair, srv] " " field("rps"); p99[pair, srv] = p99[pair, srv] " " field("p99_us")
        cpu[pair, srv] = cpu[pair, srv] " " field("server_cpu_us_per_req"); runs[pair, srv]++
        if (srv == "scraped") { scrapes[pair] += field("scrapes"); failures[pair] += field("scrape_failures"); sp99[pair] = sp99[pair] " " field("scrape_p99_ms") }
    }
    END {
        print "| pinning | configuration | runs each | req/s bridge | req/s scraped | ratio | p99 µs bridge | p99 µs scraped | ratio | CPU µs/req bridge | scraped | ratio | scrapes (failed) | scrape p99 ms |"
        print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for (k = 1; k <= npairs; k++) {
            pair = pairs[k]; split(pair, part, SUBSEP)
            if (!((pair, "bridge") in rps) || !((pair, "scraped") in rps)) continue
            br = median(rps[pair, "bridge"]); sr = median(rps[pair, "scraped"])
            bp = median(p99[pair, "bridge"]); sp = median(p99[pair, "scraped"])
            bc = median(cpu[pair, "bridge"]); sc = median(cpu[pair, "scraped"])
            printf "| %s | %s | %d | %.0f | %.0f | %.2f | %.1f | %.1f | %.2f | %.2f | %.2f | %.2f | %d (%d) | %.2f |\n",
                part[1], part[2], runs[pair, "bridge"], br, sr, sr / br, bp, sp, sp / bp, bc, sc, sc / bc,
                scrapes[pair], failures[pair], median(sp99[pair])
        }
    }' "$1"
}

run_scrape() {
    build
    {
        describe_machine
        echo "scrape mode: per run ${WARMUP} s warm-up, ${DURATION} s measured; closed loop, function 03, unit 1; each server started afresh"
        echo "bridge = sec1000 bridge --simulate; scraped = the same with --http and one curl GETting /metrics every $SCRAPE_EVERY s for the whole run"
        echo "each configuration run $REPEAT time(s) per server, alternating bridge and scraped"
    } | tee "$RESULTS/machine.txt" >&2
    : >"$RESULTS/results.txt"
    for pinning in $PINNING; do
        for c in $CONNECTIONS; do
            say "== $pinning, A22x$c: $c connection(s) reading 22 registers from 0"
            for ((repetition = 1; repetition <= REPEAT; repetition++)); do
                for server in bridge scraped; do
                    measure "$server" "$pinning" "A22x$c" 0 22 "$c" "$repetition"
                done
            done
        done
    done
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RESULTS/machine.txt" >&2
    {
        echo
        cat "$RESULTS/machine.txt"
        echo
        echo "Medians over the repetitions; ratio = scraped / bridge (throughput: above 1 is better; p99 and CPU: below 1 is better)."
        echo
        print_scrape_ratios "$RESULTS/results.txt"
        echo
        echo "The run with the median req/s of each:"
        echo
        print_table "$RESULTS/results.txt"
    } | tee "$RESULTS/table.md"
    say ""
    say "raw results: $RESULTS/results.txt; table: $RESULTS/table.md"
    if awk '{ for (i = 1; i <= NF; i++) if (($i ~ /^errors=/ && $i != "errors=0") || ($i ~ /^scrape_failures=/ && $i != "scrape_failures=0")) bad = 1 } END { exit !bad }' "$RESULTS/results.txt"; then
        die "some runs had errors or failed scrapes"
    fi
}

# Percentiles of one column of seconds, printed in ms: "p50=… p90=… p99=… max=…".
percentiles_ms() {
    sort -g | awk '{ t[++n] = $1 * 1000 } END {
        if (n == 0) { print "none"; exit }
        printf "p50=%.2f p90=%.2f p99=%.2f max=%.2f n=%d", t[int((n + 1) / 2)], t[int(n * 0.9 + 0.999)], t[int(n * 0.99 + 0.999)], t[n], n
    }'
}

# One bridge with DEVICES devices on the simulator, with (http) or without (plain) the face; after
# SETTLE s, http times HTTP_REQUESTS GETs of /metrics and /api/status; then both read VmRSS.
# Prints "variant=… rss_kib=… hwm_kib=… [metrics …] [status …]".
measure_devices() {
    local variant=$1 repetition=$2 sim_port=$3
    local -a http=()
    # A configuration file: devices on one host and port need names of their own.
    local config=$RESULTS/devices.yaml
    {
        echo "interval: 10"
        echo "devices:"
        for ((unit = 1; unit <= DEVICES; unit++)); do
            printf '  - { name: sim-%d, host: 127.0.0.1, port: %d, unit: %d }\n' "$unit" "$sim_port" "$unit"
        done
    } >"$config"
    if [[ "$variant" == http ]]; then
        next_port
        HTTP_PORT=$SERVER_PORT
        http=(--http "127.0.0.1:$HTTP_PORT")
    fi
    next_port
    "$BRIDGE" bridge --config "$config" --listen "127.0.0.1:$SERVER_PORT" --interval 10 --log-level notice "${http[@]}" \
        >"$RESULTS/$variant.$repetition.server.log" 2>&1 &
    SERVER_PID=$!
    # Every device answered once: a read of block A of each unit returns data (bounded, 60 s).
    local deadline=$((SECONDS + 60))
    for ((unit = 1; unit <= DEVICES; unit++)); do
        until "$LOAD" --probe -p "$SERVER_PORT" -u "$unit" -a 0 -n 22 -T 1 >/dev/null; do
            kill -0 "$SERVER_PID" 2>/dev/null || die "the bridge exited during start-up (see $RESULTS/$variant.$repetition.server.log)"
            ((SECONDS >= deadline)) && die "unit $unit of the bridge had no data after 60 s"
            sleep 0.1
        done
    done
    sleep "$SETTLE"
    local timings=
    if [[ "$variant" == http ]]; then
        local path name
        for path in /metrics /api/status; do
            name=${path##*/}
            # The face's Server-Timing header: the render time in ms, without the network.
            curl -sS -o /dev/null -w '%{http_code} %{time_total} %{size_download} %header{server-timing}\n' \
                "http://127.0.0.1:$HTTP_PORT$path?request=[1-$HTTP_REQUESTS]" >"$RESULTS/http.$repetition.$name.txt"
            awk '$1 != 200 || $4 !~ /^render;dur=/ { bad = 1 } END { exit bad }' "$RESULTS/http.$repetition.$name.txt" ||
                die "a GET of $path did not answer 200 with a render time (see $RESULTS/http.$repetition.$name.txt)"
            timings+=" ${name}_bytes=$(tail -1 "$RESULTS/http.$repetition.$name.txt" | cut -d' ' -f3)"
            timings+=" $(cut -d' ' -f2 "$RESULTS/http.$repetition.$name.txt" | percentiles_ms | sed "s/\([a-z0-9]*\)=/${name}_\1_ms=/g; s/${name}_n_ms=/${name}_n=/")"
            timings+=" $(awk '{ sub(/^render;dur=/, "", $4); print $4 / 1000 }' "$RESULTS/http.$repetition.$name.txt" |
                percentiles_ms | sed "s/\([a-z0-9]*\)=/${name}_render_\1_ms=/g; s/ ${name}_render_n_ms=[0-9]*//")"
        done
        sleep 1
    fi
    local rss hwm
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status")
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status")
    stop_server
    echo "variant=$variant repetition=$repetition devices=$DEVICES rss_kib=$rss hwm_kib=$hwm$timings"
}

run_http() {
    build
    {
        describe_machine
        echo "http mode: $DEVICES devices (units 1 to $DEVICES, a --config file) on one sec1000 simulate, interval 10 s; $SETTLE s after every unit answered,"
        echo "http: $HTTP_REQUESTS sequential GETs of /metrics, then of /api/status (one curl each, keep-alive), curl's time_total and the face's Server-Timing render time; then VmRSS"
        echo "plain (no --http) and http alternating, $REPEAT time(s) each"
    } | tee "$RESULTS/machine.txt" >&2
    next_port
    local sim_port=$SERVER_PORT
    "$BRIDGE" simulate --listen "127.0.0.1:$sim_port" >"$RESULTS/simulator.log" 2>&1 &
    SIMULATOR_PID=$!
    : >"$RESULTS/results.txt"
    for ((repetition = 1; repetition <= REPEAT; repetition++)); do
        for variant in plain http; do
            say "== $variant, repetition $repetition"
            measure_devices "$variant" "$repetition" "$sim_port" | tee -a "$RESULTS/results.txt" >&2
        done
    done
    stop_pid "$SIMULATOR_PID"
    SIMULATOR_PID=
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RESULTS/machine.txt" >&2
    {
        echo
        cat "$RESULTS/machine.txt"
        echo
        awk '
        function field(key,   i, kv) {
            for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) return substr($i, length(key) + 2) }
            return ""
        }
        function median(list,   n, v, i, j, t) {
            n = split(list, v, " ")
            for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
            return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
        }
        { rss[field("variant")] = rss[field("variant")] " " field("rss_kib") }
        field("variant") == "http" {
            printf "repetition %s: /metrics %s bytes, ms p50 %s p90 %s p99 %s max %s (render p50 %s p99 %s max %s); /api/status %s bytes, ms p50 %s p90 %s p99 %s max %s (render p50 %s p99 %s max %s)\n",
                field("repetition"), field("metrics_bytes"), field("metrics_p50_ms"), field("metrics_p90_ms"), field("metrics_p99_ms"), field("metrics_max_ms"),
                field("metrics_render_p50_ms"), field("metrics_render_p99_ms"), field("metrics_render_max_ms"),
                field("status_bytes"), field("status_p50_ms"), field("status_p90_ms"), field("status_p99_ms"), field("status_max_ms"),
                field("status_render_p50_ms"), field("status_render_p99_ms"), field("status_render_max_ms")
        }
        END {
            plain = median(rss["plain"]); http = median(rss["http"])
            printf "VmRSS median: plain %.1f MiB, http %.1f MiB, added by the HTTP face %+.1f MiB (%+d KiB); each run:%s (plain),%s (http) KiB\n",
                plain / 1024, http / 1024, (http - plain) / 1024, http - plain, rss["plain"], rss["http"]
        }' "$RESULTS/results.txt"
    } | tee "$RESULTS/table.md"
    say ""
    say "raw results: $RESULTS/results.txt and http.*.txt; table: $RESULTS/table.md"
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
scrape) run_scrape ;;
http) run_http ;;
build) build && say "bridge: $BRIDGE" && say "load generator: $LOAD" && say "reference server: $REFERENCE" ;;
esac
