#!/usr/bin/env bash
# End to end: what an operator sees matches the traffic sent, in tc and xdp
# mode. Through a 50/50 shift, 200 new connections (one GET each, closed)
# and 12 keep-alive connections held open; then
#   - kshiftctl get -o json: each backend's new flows grew by exactly what
#     the client saw it answer, open connections are the keep-alive ones,
#     the shares are 50%, the frontend is listed
#   - kshiftctl top --once: one plain row per backend with the same open
#     connections and weight; under a stream of new connections, new
#     flows/s, packets/s and bytes/s for both, observed shares adding to 100
#   - /metrics (parsed by prometheus_client's text parser):
#     kshift_backend_new_flows_total grew by the same counts,
#     kshift_backend_open_connections equals the keep-alive connections
set -uo pipefail
source "$(dirname "$0")/lib.sh"
ks_init observe

VIP=http://198.18.100.1:80/
METRICS=127.0.0.1:9417

cat_manifest() {
	cat <<'YAML'
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
    endpoints: ["198.18.2.2:8080"]
    weight: 50
  - name: canary
    endpoints: ["198.18.3.2:8080"]
    weight: 50
YAML
}

# scrape FILE: /metrics from inside the node namespace
scrape() {
	in_ns "$KS_NODE" "$KS_PY" -c 'import sys, urllib.request
sys.stdout.write(urllib.request.urlopen("http://'$METRICS'/metrics", timeout=5).read().decode())' >"$1"
}

# metric FILE NAME BACKEND: a sample's value, via prometheus_client
metric() {
	"$KS_PY" - "$1" "$2" "$3" <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families
text, name, backend = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
for fam in text_string_to_metric_families(text):
    for s in fam.samples:
        if s.name == name and s.labels.get("backend") == backend and s.labels.get("shift") == "web":
            print(int(s.value))
            sys.exit()
print("?")
PY
}

# jget JSON BACKEND FIELD: a backend's field in get -o json
jget() {
	jq_py "$1" '[b for b in d["status"]["backends"] if b["name"] == "'"$2"'"][0]["'"$3"'"]'
}

declare -A sent open_want new_want
for mode in $(ks_modes); do
	ks_setup "$mode" stable:198.18.2.2 canary:198.18.3.2 &&
		ks_httpd_all 8080 && ks_daemon_start --metrics-addr "$METRICS" ||
		{ ks_mode_end; continue; }
	cat_manifest >"$KS_TMP/web.yaml"
	if ! out=$(ks_ctl apply -f "$KS_TMP/web.yaml" 2>&1); then
		not_ok "apply a 50/50 shift"
		diag "$out"
		ks_mode_end
		continue
	fi
	ok "apply a 50/50 shift"
	ks_probe "$VIP" || { ks_mode_end; continue; }

	before=$(ks_ctl get web -o json)
	scrape "$KS_TMP/m0.txt" || not_ok "scrape /metrics before the traffic"
	res=$(ks_client split "$VIP" 200)
	diag "split: $res"
	ka=$KS_TMP/ka
	ks_client_bg "$ka.json" keepalive "$VIP" 12 --ready-file "$ka.ready" --go-file "$ka.go"
	ka_pid=$KS_LAST_PID
	if ! ks_wait_file "$ka.ready" 20; then
		not_ok "12 keep-alive connections open"
		touch "$ka.go"
		ks_mode_end
		continue
	fi
	ka_first=$(cat "$ka.ready")
	for b in stable canary; do
		sent[$b]=$(jq_py "$res" 'd["backends"].get("'$b'", 0)')
		held=$(jq_py "$ka_first" 'sum(1 for x in d if x and x.split()[0] == "'$b'")')
		open_want[$b]=$held
		new_want[$b]=$((sent[$b] + held))
	done
	check "the client's 200 connections all answered, and 12 keep-alive" \
		[ "$((sent[stable] + sent[canary]))" = 200 -a "$((open_want[stable] + open_want[canary]))" = 12 ]

	after=$(ks_ctl get web -o json)
	scrape "$KS_TMP/m1.txt" || not_ok "scrape /metrics after the traffic"
	top=$(ks_ctl top web --once 2>&1)
	diag "$top"
	for b in stable canary; do
		d=$(($(jget "$after" $b newFlows) - $(jget "$before" $b newFlows)))
		check "get -o json: $b's new flows grew by the $((new_want[$b])) the client saw it answer ($d)" \
			[ "$d" = "${new_want[$b]}" ]
		o=$(jget "$after" $b openConnections)
		check "get -o json: $b has ${open_want[$b]} open connections ($o)" \
			[ "$o" = "${open_want[$b]}" ]
		s=$(jget "$after" $b sharePercent)
		check "get -o json: $b's configured share is 50% ($s)" [ "$s" = 50.0 -o "$s" = 50 ]
		row=$(grep -E "^(default/web)? +$b " <<<"$top")
		check "top --once: $b's row shows weight 50 and ${open_want[$b]} open ($row)" \
			eval '[[ $(awk "{print \$(NF)}" <<<"$row") == "${open_want[$b]}" && $row == *" 50 "* ]]'
		m0=$(metric "$KS_TMP/m0.txt" kshift_backend_new_flows_total "$b")
		m1=$(metric "$KS_TMP/m1.txt" kshift_backend_new_flows_total "$b")
		check "/metrics: kshift_backend_new_flows_total{backend=$b} grew by ${new_want[$b]} ($m0 -> $m1)" \
			[ "$((m1 - m0))" = "${new_want[$b]}" ]
		mo=$(metric "$KS_TMP/m1.txt" kshift_backend_open_connections "$b")
		check "/metrics: kshift_backend_open_connections{backend=$b} is ${open_want[$b]} ($mo)" \
			[ "$mo" = "${open_want[$b]}" ]
	done
	check "get -o json lists the frontend" \
		jq_ok "$after" '"198.18.100.1:80/TCP" in d["status"]["frontends"]'
	# rates: top --once under a steady stream of new connections
	ks_client_bg "$KS_TMP/stream.json" split "$VIP" 3000 --max-failures 50
	stream_pid=$KS_LAST_PID
	sleep 0.5
	top=$(ks_ctl top web --once 2>&1)
	diag "$top"
	kill "$stream_pid" 2>/dev/null
	wait "$stream_pid" 2>/dev/null
	check "top --once under load: both backends take new flows/s and packets/s, observed shares add up to 100%" \
		"$KS_PY" -c '
import sys
rows = [l.split() for l in sys.stdin.read().splitlines() if l.split()[:1] in (["default/web"], ["canary"])]
rows = [r[1:] if r[0] == "default/web" else r for r in rows]
# BACKEND WEIGHT SHARE OBSERVED NEW/S PACKETS/S BYTES/S [RESETS] OPEN
obs = [float(r[3].rstrip("%")) for r in rows]
ok = len(rows) == 2 and all(float(r[4]) > 0 and float(r[5]) > 0 and float(r[6]) > 0 for r in rows)
sys.exit(not (ok and abs(sum(obs) - 100) < 0.5 and all(20 < o < 80 for o in obs)))' <<<"$top"
	touch "$ka.go"
	wait "$ka_pid"
	ks_mode_end
done
ks_done
