#!/usr/bin/env bash
# Runs every libFuzzer harness (tests/fuzz/fuzz_*.c, built by `make
# fuzz-build` into $KS_FUZZ_OUT/fuzz) for SECONDS each, as TAP lines:
#   tests/fuzz/run.sh [SECONDS]
# Each harness first replays its corpus, tests/fuzz/corpus/<harness>/, then
# fuzzes from a scratch copy of it for SECONDS (0: replay only), so the
# corpus in git stays small; what a run adds can be merged in by hand with
# -merge=1. A crash, leak, timeout or sanitizer report fails the harness and
# leaves its input as build-fuzzer/crash-* to replay with the harness.
set -uo pipefail
cd "$(dirname "$0")/../.."

secs=${1:-600}
out=${KS_FUZZ_OUT:-build-fuzzer}
fail=0
# -rss_limit_mb: an input that makes the parser swell is a finding too
opts=(-timeout=10 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1)

for bin in "$out"/fuzz/fuzz_*; do
	[[ -x $bin ]] || continue
	name=$(basename "$bin")
	corpus=tests/fuzz/corpus/$name
	log=$out/fuzz/$name.log
	if ! "$bin" "${opts[@]}" -runs=0 "$corpus" >"$log" 2>&1; then
		tail -n 30 "$log"
		echo "not ok - $name: replaying $corpus ($log)"
		fail=1
		continue
	fi
	echo "ok - $name: $(ls "$corpus" | wc -l) corpus inputs replayed"
	((secs > 0)) || continue
	scratch=$(mktemp -d)
	cp "$corpus"/* "$scratch"/
	"$bin" "${opts[@]}" -max_total_time="$secs" -artifact_prefix="$out/" "$scratch" \
		>"$log" 2>&1
	rc=$?
	runs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$')
	if ((rc != 0)); then
		grep -E '^==[0-9]+==|SUMMARY|runtime error|artifact_prefix|Test unit written' "$log" |
			head -n 20
		echo "not ok - $name: failed after ${runs:-?} runs ($log)"
		fail=1
	else
		echo "ok - $name: ${runs:-?} runs in $secs s, $(ls "$scratch" | wc -l) inputs, no finding"
	fi
	rm -rf "$scratch"
done
exit $fail
