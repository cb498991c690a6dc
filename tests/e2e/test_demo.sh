#!/usr/bin/env bash
# End to end: make demo (scripts/demo.sh) runs through, within 3 minutes
# (here with 5 s a step instead of 7, to stay near a minute and a half),
# and what it shows holds: its chart exists and is a PNG, its table has a
# row per step, every step's observed canary share is near the configured
# one (within 5 points where the split is exact: all or nothing, and rules
# that name whole addresses; within 10 points for weighted steps, a few
# thousand connections each; within 20 for client cohorts, where 48 hashed
# clients stand for the share), no connection failed, and no client moved
# back off the canary between the cohort steps.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
ks_init demo

OUT=$(mktemp -d /tmp/kse-demo-$$-XXXXXX)
trap 'ks_teardown; rm -rf "$OUT"' EXIT
start=$SECONDS
DEMO_HOLD=${DEMO_HOLD:-5} DEMO_OUT=$OUT KSHIFTD=$KSHIFTD KSHIFTCTL=$KSHIFTCTL timeout 200 "$KS_ROOT/scripts/demo.sh" \
	>"$OUT/demo.log" 2>&1
rc=$?
took=$((SECONDS - start))
check "make demo ends with status 0 ($rc)" [ "$rc" = 0 ]
((rc == 0)) || tail -n 40 "$OUT/demo.log" | diag
check "make demo finishes within 3 minutes (${took} s)" [ "$took" -le 180 ]
check "the chart exists and is a PNG ($OUT/demo-shares.png)" \
	eval '[[ $(head -c 8 "$OUT/demo-shares.png" 2>/dev/null | od -An -tx1 | tr -d " \n") == 89504e470d0a1a0a ]]'
check "the demo prints the chart's path" grep -q "chart: $OUT/demo-shares.png" "$OUT/demo.log"
rows=$(tail -n +2 "$OUT/steps.tsv" 2>/dev/null | wc -l)
check "the table has a row for each of the 10 steps ($rows)" [ "$rows" = 10 ]
while IFS=$'\t' read -r label want seen conns failed; do
	case $label in
	cohorts*) tol=20 ;;
	*10%* | *50%*) tol=10 ;;
	*) tol=5 ;;
	esac
	check "$label: observed canary share $seen% within $tol points of $want% ($conns connections, $failed failed)" \
		"$KS_PY" -c "import sys; sys.exit(not (abs($seen - $want) <= $tol and $conns > 100 and $failed == 0))"
done < <(tail -n +2 "$OUT/steps.tsv" 2>/dev/null)
check "no client moved back off the canary between the cohort steps" \
	grep -q "cohorts: .* 0 moved back, 0 saw both versions within a step" "$OUT/demo.log"
grep -A 14 "Configured against observed" "$OUT/demo.log" | diag
ks_done
