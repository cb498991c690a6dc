#!/usr/bin/env bash
# End to end: how many services kshiftd holds is a flag, not a build constant,
# and forcing XDP on a veth is warned about.
#   - tc: kshiftd --max-services 20000 (above the 16,384 default) takes 20,000
#     shifts of one frontend port each through one `kshiftctl apply`;
#     connections reach the endpoints through the last one installed (its
#     service id above 16,383) and the first; the 20,001st is refused, naming
#     --max-services, and the 20,000 keep serving; every reply carries the
#     daemon's own time for the request (elapsed_us, kshiftctl -o json)
#   - kshiftd refuses --max-services above its limit with a clear message
#   - --mode xdp on a veth: one warning line naming each veth and the cost;
#     none in tc or auto mode (auto picks TC on veths)
set -uo pipefail
source "$(dirname "$0")/lib.sh"
ks_init scale

MAX=20000

# shifts FIRST COUNT: TrafficShift documents i = FIRST .. FIRST+COUNT-1, the
# layout of scripts/bench-rules.py: VIP 198.18.100.(1 + i % 250), port
# 10000 + i / 250, one endpoint
shifts() {
	"$KS_PY" - "$1" "$2" <<'PY'
import sys
first, n = int(sys.argv[1]), int(sys.argv[2])
for i in range(first, first + n):
    print("---\n{apiVersion: kshift.dev/v1alpha1, kind: TrafficShift, metadata: {name: s%05d}, "
          "spec: {frontend: {addresses: [198.18.100.%d], ports: [{port: %d, protocol: TCP}]}, "
          "backends: [{name: stable, endpoints: [198.18.2.2:8080], weight: 1}]}}"
          % (i, 1 + i % 250, 10000 + i // 250))
PY
}
url() { echo "http://198.18.100.$((1 + $1 % 250)):$((10000 + $1 / 250))/"; }
count() { ks_ctl get -o json 2>/dev/null | "$KS_PY" -c 'import json, sys
d = json.load(sys.stdin)
print(len(d) if isinstance(d, list) else len(d.get("items", d.get("shifts", []))))'; }

for mode in tc xdp auto; do
	ks_setup "$mode" stable:198.18.2.2 && ks_httpd_all 8080 || { ks_mode_end; continue; }
	if [[ $mode == tc ]]; then
		ks_daemon_start --max-services $MAX || { ks_mode_end; continue; }
	else
		ks_daemon_start || { ks_mode_end; continue; }
	fi
	warned=$(grep -c "XDP on a veth turns off its peer's TSO" "$KS_LOG")
	if [[ $mode == xdp ]]; then
		# one line per veth, naming it (cli0 and ep0 here)
		check "--mode xdp on veths: a warning names each veth and the cost ($warned lines)" \
			eval '[[ $warned == 2 ]] && grep -q "^.*cli0: XDP on a veth .*70-80% of bulk TCP.*--mode tc" "$KS_LOG"'
	else
		check "--mode $mode on veths: no XDP warning" [ "$warned" = 0 ]
	fi
	if [[ $mode != tc ]]; then
		ks_mode_end
		continue
	fi

	shifts 0 $MAX >"$KS_TMP/all.yaml"
	t0=${EPOCHREALTIME//[!0-9]/}
	out=$(ks_ctl --timeout 120s -o json apply -f "$KS_TMP/all.yaml" 2>"$KS_TMP/apply.err")
	rc=$?
	took=$(((${EPOCHREALTIME//[!0-9]/} - t0) / 1000))
	check "$MAX shifts in one apply with --max-services $MAX: exit 0 (got $rc, $took ms)" \
		[ "$rc" = 0 ]
	[[ $rc == 0 ]] || diag <"$KS_TMP/apply.err"
	us=$(jq_py "$out" 'd["elapsed_us"]')
	diag "the daemon's own time for it: $us us (elapsed_us), $took ms around kshiftctl"
	check "apply -o json reports the daemon's time, within the wall time ($us us)" \
		eval '[[ $us =~ ^[0-9]+$ ]] && ((us > 0 && us <= took * 1000))'
	check "kshiftctl get lists $MAX shifts" [ "$(count)" = $MAX ]
	check "the last one installed steers (service id past 16,383)" \
		ks_probe "$(url $((MAX - 1)))"
	check "the first one steers" ks_probe "$(url 0)"

	shifts $MAX 1 >"$KS_TMP/one.yaml"
	err=$(ks_ctl apply -f "$KS_TMP/one.yaml" 2>&1 >/dev/null)
	rc=$?
	diag "the ${MAX}th + 1: $err"
	check "the 20,001st shift is refused (exit 1, got $rc)" [ "$rc" = 1 ]
	check "the refusal names the limit (services, --max-services)" \
		eval '[[ $err == *services* && $err == *max-services* ]]'
	check "the $MAX stay applied" [ "$(count)" = $MAX ]
	check "and keep steering" ks_probe "$(url $((MAX - 1)))"

	# set: the daemon's time in the reply too (-o json)
	out=$(ks_ctl -o json set s00000 stable=1 2>&1)
	check "set -o json reports elapsed_us" jq_ok "$out" 'd["elapsed_us"] > 0'

	# over the limit: refused before anything is loaded
	err=$(ip netns exec "$KS_NODE" "$KSHIFTD" --iface cli0 --mode tc --max-services 2000000 \
		--socket "$KS_TMP/other.sock" --pin-path "$KS_PIN-other" --config-dir "$KS_CONF" \
		--state-dir "$KS_TMP/other-state" 2>&1)
	rc=$?
	check "--max-services 2000000: kshiftd refuses to start (exit $rc) and names the limit" \
		eval '((rc != 0)) && [[ $err == *1048576* ]]'
	[[ $rc != 0 ]] || diag <<<"$err"
	ks_mode_end
done
ks_done
