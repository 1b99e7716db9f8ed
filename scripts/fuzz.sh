#!/usr/bin/env bash
# Builds the libFuzzer targets of Fuzz/ (every module instrumented: -sanitize=fuzzer,address) and
# runs each for FUZZ_SECONDS seconds (default 60) on its seed corpus, Fuzz/Corpus/<name>/.
# New inputs go to .build/fuzz/<target>/corpus; a crash or a broken invariant stops the run with the
# input saved as .build/fuzz/<target>/crash-* (replay: <binary> <that file>).
# Long mode: FUZZ_SECONDS=3600 make fuzz. One target: scripts/fuzz.sh FuzzModbusDecide.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
# Swift's own crash reporter would race libFuzzer's; allocation stacks cost a third of the time.
export SWIFT_BACKTRACE="enable=no"
export ASAN_OPTIONS="${ASAN_OPTIONS:-malloc_context_size=0}"
targets=("$@")
if ((${#targets[@]} == 0)); then targets=(FuzzSEC1000Frames FuzzModbusDecide); fi
# One -sanitize flag naming both: SwiftPM's `--sanitize=fuzzer --sanitize=address` passes two flags
# in an order that changes from run to run, and the compiler keeps only the last one. lld, because
# gold warns about every ASan symbol it cannot export.
flags=(--package-path Fuzz -c debug --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld)

# libFuzzer comes with the Swift toolchain for Linux (clang's runtime, lib/clang/*/lib/linux).
toolchain="$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")"
if ! compgen -G "$toolchain/lib/clang/*/lib/linux/libclang_rt.fuzzer-$(uname -m).a" >/dev/null; then
    echo "no libFuzzer runtime in $toolchain/lib/clang: install a Swift toolchain for Linux from swift.org" >&2
    exit 1
fi

swift build "${flags[@]}"
bin="$(swift build "${flags[@]}" --show-bin-path)"
for target in "${targets[@]}"; do
    seeds="Fuzz/Corpus/${target#Fuzz}"
    work=".build/fuzz/$target"
    mkdir -p "$work/corpus"
    echo "== $target: $seconds s, seeds from $seeds"
    # The log is kept whole; the end of it (the final statistics, or the crash) is shown.
    if ! "$bin/$target" "$work/corpus" "$seeds" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
        -artifact_prefix="$work/" -print_final_stats=1 >"$work/log" 2>&1; then
        tail -n 60 "$work/log"
        echo "$target failed: see $work/log and the crash input in $work/" >&2
        exit 1
    fi
    if ! grep -q "inline 8-bit counters" "$work/log"; then
        echo "$target ran without coverage instrumentation: rebuild it (rm -rf Fuzz/.build)" >&2
        exit 1
    fi
    grep -E "^(#[0-9]+[[:space:]]+(INITED|DONE)|Done [0-9]+ runs|stat::average_exec_per_sec|stat::peak_rss_mb)" "$work/log" || tail -n 5 "$work/log"
    echo "   corpus: $(find "$work/corpus" -type f | wc -l) inputs found beyond the seeds"
done
