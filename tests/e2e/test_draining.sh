#!/usr/bin/env bash
# End to end: draining endpoints (SPEC: a terminating endpoint keeps the
# connections it has and gets no new ones, unless no endpoint is ready).
# One backend with two endpoints, .2 and .3, in tc and xdp mode:
#   - 20 keep-alive connections open on both endpoints
#   - re-applied with .3 as {address, draining: true}: every new connection
#     goes to .2, and each of the 20 connections, .3's included, still
#     answers on the same TCP connection from the same endpoint
#   - `kshiftctl get -o json` shows .3 in the object form, and applying that
#     output again changes nothing
#   - both draining: new connections go to both (nothing is ready, so the
#     terminating endpoints take them rather than a reset)
#   - back to both ready: both take new connections again
# Removing an endpoint is not tested here.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
ks_init draining

VIP_URL=http://198.18.100.1:80/

# write_manifest FILE ENDPOINTS: the shift, with ENDPOINTS as its list
write_manifest() {
	cat >"$1" <<EOF
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
    endpoints: $2
    weight: 1
EOF
}

# apply ENDPOINTS MSG: re-applies the shift; ok/not ok MSG
apply() {
	local out
	write_manifest "$KS_TMP/web.yaml" "$1"
	if out=$(ks_ctl apply -f "$KS_TMP/web.yaml" 2>&1); then
		ok "$2"
	else
		not_ok "$2"
		diag "$out"
	fi
}

# count_ep JSON ADDR: new connections of a split that reached endpoint ADDR
count_ep() {
	jq_py "$1" "d['endpoints'].get('stable $2', 0)"
}

for mode in $(ks_modes); do
	ks_setup "$mode" stable:198.18.2.2 stable:198.18.2.3 &&
		ks_httpd_all 8080 && ks_daemon_start || { ks_mode_end; continue; }

	apply '["198.18.2.2:8080", "198.18.2.3:8080"]' "kshiftctl apply: two ready endpoints"
	ks_probe "$VIP_URL" || { ks_mode_end; continue; }

	# 20 keep-alive connections, spread over both endpoints by the ring
	ka=$KS_TMP/keepalive
	ks_client_bg "$ka.json" keepalive "$VIP_URL" 20 --ready-file "$ka.ready" --go-file "$ka.go"
	ka_pid=$KS_LAST_PID
	if ks_wait_file "$ka.ready" 20; then
		first=$(cat "$ka.ready")
		n=$(jq_py "$first" 'sum(1 for x in d if x)')
		on3=$(jq_py "$first" 'sum(1 for x in d if x == "stable 198.18.2.3")')
		check "20 keep-alive connections answered ($n answered)" [ "$n" = 20 ]
		# all 20 on one endpoint: 2 in a million with a fair ring
		check "keep-alive connections on both endpoints ($on3 of 20 on .3)" \
			between 1 "$on3" 19
	else
		not_ok "20 keep-alive connections answered (client never got ready)"
	fi

	apply '["198.18.2.2:8080", {address: "198.18.2.3:8080", draining: true}]' \
		"kshiftctl apply: .3 draining"
	res=$(ks_client split "$VIP_URL" 100)
	diag "split, .3 draining: $res"
	check "with .3 draining, 100 new connections all go to .2 ($(jq_py "$res" 'd["endpoints"]'))" \
		[ "$(count_ep "$res" 198.18.2.2)" = 100 ]

	# get counts what the draining endpoint still serves (docs/health.md)
	open3=$(ks_ctl get web -o json 2>/dev/null | "$KS_PY" -c '
import json, sys
d = json.load(sys.stdin)
d = d[0] if isinstance(d, list) else d
print([e for e in d["status"]["backends"][0]["endpointStatus"]
       if e["address"] == "198.18.2.3:8080"][0]["connections"])' 2>&1)
	check "kshiftctl get shows the keep-alive connections still open on draining .3 ($open3 of $on3)" \
		[ "$open3" = "$on3" ]

	# every open connection, those on the draining endpoint too, carries on
	touch "$ka.go"
	wait "$ka_pid"
	res=$(cat "$ka.json")
	diag "keepalive: $(jq_py "$res" '{k: v for k, v in d.items() if k != "conns"}')"
	kept3=$(jq_py "$res" 'sum(1 for c in d["conns"] if not c["error"] and c["count"] == 2 and c["first"] == c["second"] == "stable 198.18.2.3")')
	check "all 20 keep-alive connections answer again on the same connection and endpoint ($(jq_py "$res" 'd["kept"]') kept)" \
		[ "$(jq_py "$res" 'd["kept"]')" = 20 ]
	check "the keep-alive connections on the draining endpoint answer again ($kept3 of $on3)" \
		[ "$kept3" = "$on3" ]
	errs=$(jq_py "$res" '[c for c in d["conns"] if c["error"] or c["first"] != c["second"]][:3]')
	[[ $errs != "[]" ]] && diag "broken: $errs"

	# the JSON form shows the draining endpoint and applies back unchanged
	before=$(ks_spec web)
	eps=$(jq_py "$before" 'd["backends"][0]["endpoints"]')
	check "kshiftctl get -o json shows .3 draining ($eps)" \
		jq_ok "$before" 'd["backends"][0]["endpoints"] == ["198.18.2.2:8080", {"address": "198.18.2.3:8080", "draining": True}]'
	if out=$(ks_ctl get web -o json 2>&1 | ks_ctl apply -f - 2>&1); then
		check "kshiftctl get -o json | kshiftctl apply -f - leaves the spec as it was" \
			[ "$(ks_spec web)" = "$before" ]
	else
		not_ok "kshiftctl get -o json | kshiftctl apply -f - is accepted"
		diag "$out"
	fi

	# nothing ready: the terminating endpoints take new connections
	apply '[{address: "198.18.2.2:8080", draining: true}, {address: "198.18.2.3:8080", draining: true}]' \
		"kshiftctl apply: both draining"
	res=$(ks_client split "$VIP_URL" 100)
	diag "split, both draining: $res"
	n2=$(count_ep "$res" 198.18.2.2)
	n3=$(count_ep "$res" 198.18.2.3)
	check "with both draining, 100 new connections succeed (failed: $(jq_py "$res" 'd["failures"]'))" \
		[ "$(jq_py "$res" 'd["failures"]')" = 0 ]
	# each about 50: binomial sd 5, so 20 is 6 sd away
	check "with both draining, both take new connections (.2: $n2, .3: $n3)" \
		eval 'between 20 "$n2" 80 && between 20 "$n3" 80'

	apply '["198.18.2.2:8080", {address: "198.18.2.3:8080", draining: false}]' \
		"kshiftctl apply: both ready again"
	res=$(ks_client split "$VIP_URL" 100)
	diag "split, both ready: $res"
	n2=$(count_ep "$res" 198.18.2.2)
	n3=$(count_ep "$res" 198.18.2.3)
	check "both ready again, both take new connections (.2: $n2, .3: $n3)" \
		eval 'between 20 "$n2" 80 && between 20 "$n3" 80'

	ks_mode_end
done
ks_done
