#!/usr/bin/env bash
# End to end: client cohorts (affinity: client), in tc and xdp mode, from 200
# client addresses, two connections each, at canary weights 0, 10, 25, 50,
# 75, 100 (stable the rest):
#   - no client sees both versions at one weight, nor two endpoints
#   - the canary's clients number within 3 standard deviations (at least
#     9) of the weight's share of 200: hashing places clients at random
#   - the set of canary clients only grows: raising the canary's weight
#     moves clients onto it, never off it
# and two kshiftd with the same --hash-seed, in two node namespaces (the tc
# and the xdp run), send each client to the same backend and endpoint.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
ks_init cohorts

COH=$(mktemp -d /tmp/kse-cohorts-$$-XXXXXX)
trap 'ks_teardown; rm -rf "$COH"' EXIT
SEED=0x6b73686966742121
VIP=http://198.18.100.1:80/
WEIGHTS=(0 10 25 50 75 100)
CLIENTS=()
for i in $(seq 10 209); do CLIENTS+=("198.18.1.$i"); done
SOURCES=$(IFS=,; echo "${CLIENTS[*]}")

cat >"$COH/web.yaml" <<'YAML'
apiVersion: kshift.dev/v1alpha1
kind: TrafficShift
metadata:
  name: web
spec:
  frontend:
    addresses: ["198.18.100.1"]
    ports:
    - {port: 80, protocol: TCP}
  backends:
  - name: stable
    endpoints: ["198.18.2.2:8080", "198.18.2.3:8080"]
    weight: 100
  - name: canary
    endpoints: ["198.18.3.2:8080", "198.18.3.3:8080"]
    weight: 0
  affinity: client
YAML

# tap LINES: "ok - ..." and "not ok - ..." lines counted as this test's,
# "# ..." ones passed on as comments
tap() {
	local line
	while read -r line; do
		case $line in
		ok\ -*) ok "${line#ok - }" ;;
		\#*) diag "${line#\# }" ;;
		?*) not_ok "${line#not ok - }" ;;
		esac
	done <<<"$1"
}

# judge MODE: TAP lines about the steps saved in $COH/MODE-W.json
judge() {
	"$KS_PY" - "$COH" "$1" "${WEIGHTS[@]}" <<'PY'
import json, sys
coh, mode, weights = sys.argv[1], sys.argv[2], [int(w) for w in sys.argv[3:]]
prev, lines = set(), []

def step_verdicts(w):
    """What the dataplane counted during step w but plain NAT: drops,
    passive health's resteers, ..."""
    try:
        b, a = (json.load(open(f"{coh}/{mode}-{w}.{x}"))["verdicts"] for x in ("before", "after"))
    except Exception as e:
        return repr(e)
    return {k: v - b.get(k, 0) for k, v in a.items()
            if isinstance(v, int) and v != b.get(k, 0)
            and k not in ("nat_new", "nat_established", "nat_reply")}

for w in weights:
    try:
        d = json.load(open(f"{coh}/{mode}-{w}.json"))
        src = d["sources"]
    except Exception as e:
        print(f"not ok - canary {w}: no result ({e!r})")
        continue
    # what each such client got, so that a failure says why
    mixed = [f"{s} {a}" for s, a in src.items()
             if len(a) != 1 or any(k.startswith("error") for k in a)]
    print(("ok" if not mixed and len(src) == 200 else "not ok") +
          f" - canary {w}: each of {len(src)} clients on one endpoint of one version"
          f" (split or failed: {mixed[:5]})")
    if mixed:
        print(f"# canary {w}: the step's other verdicts: {step_verdicts(w)}")
    canary = {s for s, a in src.items() if any(k.startswith("canary") for k in a)}
    want = 200 * w // 100
    # the canary takes exactly w% of the hash space; 200 hashed addresses
    # land in it binomially (sd 7.1 at 50%), so 9 either way would fail
    # one run in five: 3 sd, and never less than 9
    tol = max(9, round(3 * (200 * w / 100 * (1 - w / 100)) ** 0.5))
    print(("ok" if abs(len(canary) - want) <= tol else "not ok") +
          f" - canary {w}: {len(canary)} canary clients, {want} +- {tol} expected")
    left = sorted(prev - canary)
    print(("ok" if not left else "not ok") +
          f" - canary {w}: every canary client of the last step is still on it"
          f" (moved off: {left[:5]})")
    prev = canary
PY
}

for mode in $(ks_modes); do
	ks_setup "$mode" stable:198.18.2.2 stable:198.18.2.3 canary:198.18.3.2 canary:198.18.3.3 &&
		ks_httpd_all 8080 && ks_daemon_start --hash-seed "$SEED" || { ks_mode_end; continue; }
	for a in "${CLIENTS[@]}"; do
		in_ns "$KS_CLIENT" ip addr add "$a/24" dev eth0 || not_ok "client address $a"
	done
	if ! out=$(ks_ctl apply -f "$COH/web.yaml" 2>&1); then
		not_ok "apply: stable 100, canary 0, affinity: client"
		diag "$out"
		ks_mode_end
		continue
	fi
	ok "apply: stable 100, canary 0, affinity: client"
	ks_probe "$VIP" || { ks_mode_end; continue; }
	for w in "${WEIGHTS[@]}"; do
		if ! out=$(ks_ctl set web stable=$((100 - w)) canary="$w" 2>&1); then
			not_ok "set web stable=$((100 - w)) canary=$w"
			diag "$out"
		fi
		ks_ctl verdicts -o json >"$COH/$mode-$w.before" 2>&1
		ks_client split "$VIP" $((2 * ${#CLIENTS[@]})) --source "$SOURCES" \
			>"$COH/$mode-$w.json"
		ks_ctl verdicts -o json >"$COH/$mode-$w.after" 2>&1
	done
	tap "$(judge "$mode")"
	ks_mode_end
done

# two nodes, one seed: the same endpoint for every client at every weight
modes=($(ks_modes))
if ((${#modes[@]} >= 2)); then
	tap "$("$KS_PY" - "$COH" "${modes[0]}" "${modes[1]}" "${WEIGHTS[@]}" <<'PY'
import json, sys
coh, m1, m2, weights = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
for w in weights:
    try:
        a = json.load(open(f"{coh}/{m1}-{w}.json"))["sources"]
        b = json.load(open(f"{coh}/{m2}-{w}.json"))["sources"]
    except Exception as e:
        print(f"not ok - canary {w}: no result to compare ({e!r})")
        continue
    differ = [f"{s} {a[s]} {b.get(s)}" for s in a if a[s] != b.get(s)]
    print(("ok" if len(a) == 200 and not differ else "not ok") +
          f" - canary {w}: the {m1} node and the {m2} node (same --hash-seed) send each of"
          f" {len(a)} clients to the same endpoint (differ: {differ[:3]})")
PY
)"
fi
ks_done
