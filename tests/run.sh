#!/usr/bin/env bash
# Runs the test suites and ends with one summary line, "N passed, N failed".
#   tests/run.sh unit|pkt|e2e|fuzz|all ...
# Unit and packet tests are cmocka binaries under build/tests; end-to-end
# tests are scripts tests/e2e/test_*.sh that print TAP lines ("ok - ...",
# "not ok - ..."). A binary or script that exits non-zero without reporting
# a failure counts as one failure, so a crash is never a pass.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
failures=()
build=${KS_BUILD:-build} # make SANITIZE=1 builds into build-san
log_dir=$build/test-logs
mkdir -p "$log_dir"

# run NAME COMMAND...: runs one test program, counts its cases
run() {
	local name=$1 log="$log_dir/$1.log" rc ok bad
	shift
	echo "== $name"
	"$@" >"$log" 2>&1
	rc=$?
	sed 's/^/   /' "$log"
	ok=$(grep -cE '^\[       OK \]|^ok ' "$log")
	# cmocka names each failed test twice: once when it fails, once in
	# its summary; count names, not lines
	bad=$(( $(grep -E '^\[  FAILED  \] [^0-9]' "$log" | sort -u | wc -l) +
		$(grep -cE '^not ok ' "$log") ))
	if ((rc != 0 && bad == 0)); then
		bad=1
		echo "   $name exited with status $rc"
	fi
	((bad > 0)) && failures+=("$name")
	passed=$((passed + ok))
	failed=$((failed + bad))
}

suite_unit() {
	local t
	for t in "$build"/tests/test_*; do
		[[ -x $t && $(basename "$t") != test_pkt* ]] || continue
		run "$(basename "$t")" "$t"
	done
}

suite_pkt() {
	local t
	for t in "$build"/tests/test_pkt*; do
		[[ -x $t ]] || continue
		run "$(basename "$t")" "$t"
	done
}

suite_e2e() {
	local t
	for t in tests/e2e/test_*.sh; do
		[[ -f $t ]] || continue
		run "$(basename "$t" .sh)" bash "$t"
	done
}

# the libFuzzer harnesses (tests/fuzz/run.sh): corpus replay and a short run
suite_fuzz() {
	run fuzz bash tests/fuzz/run.sh "${FUZZ_TEST_SECONDS:-20}"
}

for s in "${@:-all}"; do
	case $s in
	unit) suite_unit ;;
	pkt) suite_pkt ;;
	e2e) suite_e2e ;;
	fuzz) suite_fuzz ;;
	all) suite_unit; suite_pkt; suite_fuzz; suite_e2e ;;
	*) echo "usage: $0 unit|pkt|e2e|fuzz|all ..." >&2; exit 2 ;;
	esac
done

((${#failures[@]})) && echo "failing: ${failures[*]}"
echo "kshift: $passed passed, $failed failed"
((failed == 0 && passed > 0))
