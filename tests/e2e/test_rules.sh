#!/usr/bin/env bash
# End to end: source rules (A/B tests, dark launches), in tc and xdp mode,
# through an IPv4 and an IPv6 frontend, from 48 client addresses each:
#   - weights 100/0 and a rule for 198.18.1.16/28 (2001:2:0:1::10/124) to
#     the canary: every connection from inside the prefix reaches the
#     canary, none from outside does (a dark launch)
#   - nested prefixes: the most specific wins, whatever the order listed
#   - a rule whose backend has no endpoint leaves its clients to the
#     weights, and `kshiftctl get` says so
set -uo pipefail
source "$(dirname "$0")/lib.sh"
ks_init rules

VIP4=http://198.18.100.1:80/
VIP6=http://[2001:2:0:100::1]:80/
# client addresses: .16-.31 are inside the /28, .32-.63 outside it (and
# the /124 is ::10-::1f)
IN4=() OUT4=() IN6=() OUT6=()
for i in $(seq 16 31); do IN4+=("198.18.1.$i"); IN6+=("2001:2:0:1::$(printf %x "$i")"); done
for i in $(seq 32 63); do OUT4+=("198.18.1.$i"); OUT6+=("2001:2:0:1::$(printf %x "$i")"); done

quiet() {
	"$@" >/dev/null
}

join() {
	local IFS=,
	echo "$*"
}

# manifest FILE CANARY_ENDPOINTS RULES: the shift, 100/0, with these rules
manifest() {
	cat >"$1" <<YAML
apiVersion: kshift.dev/v1alpha1
kind: TrafficShift
metadata:
  name: web
spec:
  frontend:
    addresses: ["198.18.100.1", "2001:2:0:100::1"]
    ports:
    - {port: 80, protocol: TCP}
  backends:
  - name: stable
    endpoints: ["198.18.2.2:8080", "[2001:2:0:2::2]:8080"]
    weight: 100
  - name: canary
    service: web-v2
    endpoints: [$2]
    weight: 0
  rules:
$3
YAML
}

CANARY_EPS='"198.18.3.2:8080", "[2001:2:0:3::2]:8080"'
RULE28='  - sources: ["198.18.1.16/28", "2001:2:0:1::10/124"]
    backend: canary'
NESTED='  - sources: ["198.18.1.16/28", "2001:2:0:1::10/124"]
    backend: stable
  - sources: ["198.18.1.0/24", "2001:2:0:1::/64"]
    backend: canary'

# share URL SOURCES...: "canary stable failures" over 2 connections from each
share() {
	local url=$1 res
	shift
	res=$(ks_client split "$url" $((2 * $#)) --source "$(join "$@")")
	jq_py "$res" '"%d %d %d" % (d["backends"].get("canary", 0), d["backends"].get("stable", 0), d["failures"])'
}

# expect WHAT URL CANARY STABLE SOURCES...: counts as expected
expect() {
	local what=$1 url=$2 want="$3 $4 0" got
	shift 4
	got=$(share "$url" "$@")
	check "$what (canary stable failures: $got, expected $want)" [ "$got" = "$want" ]
}

for mode in $(ks_modes); do
	ks_setup "$mode" stable:198.18.2.2 canary:198.18.3.2 &&
		ks_httpd_all 8080 && ks_daemon_start || { ks_mode_end; continue; }
	for a in "${IN4[@]}" "${OUT4[@]}"; do
		in_ns "$KS_CLIENT" ip addr add "$a/24" dev eth0 || not_ok "client address $a"
	done
	for a in "${IN6[@]}" "${OUT6[@]}"; do
		in_ns "$KS_CLIENT" ip addr add "$a/64" dev eth0 nodad || not_ok "client address $a"
	done

	manifest "$KS_TMP/web.yaml" "$CANARY_EPS" "$RULE28"
	if ! out=$(ks_ctl apply -f "$KS_TMP/web.yaml" 2>&1); then
		not_ok "apply: 100/0 and a rule for 198.18.1.16/28 to the canary"
		diag "$out"
		ks_mode_end
		continue
	fi
	ok "apply: 100/0 and a rule for 198.18.1.16/28 to the canary"
	ks_probe "$VIP4" || { ks_mode_end; continue; }
	n_in=${#IN4[@]} n_out=${#OUT4[@]}
	expect "IPv4: every connection from inside the /28 reaches the canary" \
		"$VIP4" $((2 * n_in)) 0 "${IN4[@]}"
	expect "IPv4: none from outside it does, though the /24 is the same" \
		"$VIP4" 0 $((2 * n_out)) "${OUT4[@]}"
	expect "IPv6: every connection from inside the /124 reaches the canary" \
		"$VIP6" $((2 * n_in)) 0 "${IN6[@]}"
	expect "IPv6: none from outside it does" "$VIP6" 0 $((2 * n_out)) "${OUT6[@]}"
	out=$(ks_ctl get web)
	check "get lists the rule in force" grep -q "rule for 198.18.1.16/28 → canary$" <<<"$out"
	diag "$out"

	manifest "$KS_TMP/web.yaml" "$CANARY_EPS" "$NESTED"
	check "apply: /28 to stable inside /24 to the canary" quiet ks_ctl apply -f "$KS_TMP/web.yaml"
	expect "IPv4 nested: the /28 (most specific) goes to stable" \
		"$VIP4" 0 $((2 * n_in)) "${IN4[@]}"
	expect "IPv4 nested: the rest of the /24 goes to the canary" \
		"$VIP4" $((2 * n_out)) 0 "${OUT4[@]}"
	expect "IPv6 nested: the /124 goes to stable" "$VIP6" 0 $((2 * n_in)) "${IN6[@]}"
	expect "IPv6 nested: the rest of the /64 goes to the canary" \
		"$VIP6" $((2 * n_out)) 0 "${OUT6[@]}"

	manifest "$KS_TMP/web.yaml" "" "$RULE28"
	check "apply: the rule's backend has no endpoint" quiet ks_ctl apply -f "$KS_TMP/web.yaml"
	expect "IPv4: the rule's clients follow the weights, all to stable, none refused" \
		"$VIP4" 0 $((2 * n_in)) "${IN4[@]}"
	expect "IPv6: likewise" "$VIP6" 0 $((2 * n_in)) "${IN6[@]}"
	out=$(ks_ctl get web)
	check "get says the rule is not in force and why" \
		grep -q "rule for 198.18.1.16/28 → canary: no endpoints, weights apply" <<<"$out"
	diag "$out"
	ks_mode_end
done
ks_done
