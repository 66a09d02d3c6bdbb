#!/bin/sh
# Build the fuzz targets with clang + libFuzzer + ASan/UBSan and run each for a
# while; print executions and crashes per target (exit 1 if any crashed). Crash inputs are left in
# $OUT/crashes/<target>/ (copy them into corpus/<target>/ as regression inputs
# once fixed).
#   tests/fuzz/run_fuzz.sh [SECONDS_PER_TARGET=60] [TARGET...]   (e.g. onnx shapes tensor)
# Environment: BUILD (build dir, default build-fuzz), OUT (work dir, default $BUILD/fuzz-out),
#              JOBS (parallel fuzzing jobs per target, default 1).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECONDS_PER_TARGET=${1:-60}
[ $# -gt 0 ] && shift
# Default: every target with a source here (tests/fuzz/fuzz_<target>.c).
TARGETS=${*:-$(for f in "$ROOT"/tests/fuzz/fuzz_*.c; do basename "$f" .c | sed 's/^fuzz_//'; done)}
BUILD=${BUILD:-$ROOT/build-fuzz}
OUT=${OUT:-$BUILD/fuzz-out}
JOBS=${JOBS:-1}

CC=clang cmake -S "$ROOT" -B "$BUILD" -DAC_FUZZ=ON -DAC_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target $(for t in $TARGETS; do printf 'fuzz_%s ' "$t"; done) >/dev/null

status=0
for t in $TARGETS; do
    bin=$(find "$BUILD" -name "fuzz_$t" -type f -perm -u+x | head -n 1)
    seeds="$ROOT/tests/fuzz/corpus/$t"
    mkdir -p "$seeds"
    work="$OUT/corpus/$t"       # grows as the fuzzer finds new coverage; seeds stay untouched
    crashes="$OUT/crashes/$t"
    mkdir -p "$work" "$crashes"
    rm -f "$crashes"/* # count this run's findings only (a previous run printed its own)
    log="$OUT/$t.log"
    # -rss_limit_mb/-malloc_limit_mb: an allocation driven by a length field is a finding.
    parallel=""
    [ "$JOBS" -gt 1 ] && parallel="-jobs=$JOBS -workers=$JOBS"
    rm -f "$OUT"/fuzz-*.log
    set +e
    # shellcheck disable=SC2086 # $parallel is empty or two options
    (cd "$OUT" && "$bin" "$work" "$seeds" \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -timeout=10 $parallel -artifact_prefix="$crashes/" \
        -print_final_stats=1 >"$log" 2>&1)
    rc=$?
    set -e
    # with -jobs each job logs to $OUT/fuzz-N.log
    execs=$(cat "$log" "$OUT"/fuzz-*.log 2>/dev/null | grep 'stat::number_of_executed_units' | awk '{s+=$2} END {print s+0}')
    ncrash=$(find "$crashes" -type f | wc -l)
    printf '%-8s %10s executions  %3d crash/leak/timeout inputs  (exit %d, log %s)\n' \
        "$t" "$execs" "$ncrash" "$rc" "$log"
    [ "$ncrash" -eq 0 ] && [ "$rc" -eq 0 ] || status=1
done
exit $status
