#!/usr/bin/env bash
# End to end: shadow traffic (docs/shadow.md), in tc and xdp mode.
#   - at 100%, requests over short and keep-alive connections (GET, and
#     POST bodies of 1 byte to 1 MB) all succeed with the primary's answers
#     only, and the shadow serves at least 99% of them, with the same
#     request lines and bodies (replayed by kshiftd from the ring buffer)
#   - the comparison of answers: the shadow answers a known subset
#     differently, and `get` counts exactly those as mismatches
#   - at 10%, the shadow sees 10% +- 5 of 1,000 connections
#   - UDP: 200 datagrams are copied to the shadow (tc; xdp copies none, as
#     documented) and no answer of the shadow reaches the client
#   - with the shadow killed, then blackholed, no primary request fails and
#     the primary's median latency stays within a generous margin of its
#     median with mirroring off
set -uo pipefail
source "$(dirname "$0")/lib.sh"
ks_init shadow

SHADOWD=$KS_E2E/shadowd.py

write_manifest() {
	cat >"$KS_TMP/web.yaml" <<'EOF'
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
    weight: 1
  - name: shadow
    endpoints: ["198.18.4.2:8080"]
    weight: 0
  mirror: {backend: shadow, percent: 100}
---
apiVersion: kshift.dev/v1alpha1
kind: TrafficShift
metadata:
  name: dns
spec:
  frontend:
    addresses: ["198.18.100.2"]
    ports:
    - {port: 53, protocol: UDP}
  backends:
  - name: stable
    endpoints: ["198.18.2.2:5353"]
    weight: 1
  - name: shadow
    endpoints: ["198.18.4.2:5353"]
    weight: 0
  mirror: {backend: shadow, percent: 100}
EOF
}

# serve NS NAME ADDR [ARGS...]: shadowd.py serve, logging to KS_TMP/NAME.log
serve() {
	local ns=$1 name=$2 addr=$3
	shift 3
	ip netns exec "$ns" "$KS_PY" "$SHADOWD" serve --name "$name" --addr "$addr" --tcp 8080 \
		--udp 5353 --log "$KS_TMP/$name.log" --ready-file "$KS_TMP/$name.ready" "$@" \
		</dev/null >>"$KS_TMP/$name.out" 2>&1 &
	KS_BG_PIDS+=($!)
	SERVE_PID=$!
	ks_wait_file "$KS_TMP/$name.ready" 10
}

# load ARGS...: shadowd.py load in the client namespace
load() {
	in_ns "$KS_CLIENT" "$KS_PY" "$SHADOWD" load "$@"
}

# mirror_field FIELD: status.mirror.FIELD of shift web
mirror_field() {
	ks_ctl get "${2:-web}" -o json 2>/dev/null | "$KS_PY" -c '
import json, sys
try:
    d = json.load(sys.stdin)
    items = d if isinstance(d, list) else d.get("items", [d])
    print(items[0]["status"]["mirror"][sys.argv[1]])
except Exception as e:
    print("?")' "$1"
}

# mirror_status [NAME]: status.mirror of a shift, as JSON
mirror_status() {
	ks_ctl get "${1:-web}" -o json 2>/dev/null | "$KS_PY" -c '
import json, sys
d = json.load(sys.stdin)
items = d if isinstance(d, list) else d.get("items", [d])
print(json.dumps(items[0]["status"]["mirror"], indent=1))' 2>&1
}

lines() {
	[[ -e $1 ]] && wc -l <"$1" || echo 0
}

# settled N: the shadow log has stopped growing at N lines or more
shadow_has() {
	(($(lines "$KS_TMP/shadow.log") >= $1))
}

# results_reach N: match + mismatch + dropped of web reach N
results_reach() {
	local m x d
	m=$(mirror_field match) x=$(mirror_field mismatch) d=$(mirror_field dropped)
	[[ $m$x$d =~ ^[0-9]+$ ]] && ((m + x + d >= $1))
}

# covered CLIENT_LOG SHADOW_LOG: percent of the client's requests (as
# lines "METHOD PATH LEN SHA") found in the shadow's log, as a multiset
covered() {
	"$KS_PY" - "$1" "$2" <<'EOF'
import collections, sys
want = collections.Counter(open(sys.argv[1]).read().split("\n")[:-1])
got = collections.Counter(l for l in open(sys.argv[2]).read().split("\n") if not l.startswith("UDP"))
n = sum(want.values())
print(int(100 * sum(min(c, got[k]) for k, c in want.items()) / n) if n else 0)
EOF
}

for mode in $(ks_modes); do
	ks_setup "$mode" stable:198.18.2.2 shadow:198.18.4.2 || { ks_mode_end; continue; }
	serve "$KS_PFX-ep0" stable 198.18.2.2 || { not_ok "stable server starts"; ks_mode_end; continue; }
	serve "$KS_PFX-ep1" shadow 198.18.4.2 --differ /diff ||
		{ not_ok "shadow server starts"; ks_mode_end; continue; }
	SHADOW_PID=$SERVE_PID
	ks_daemon_start --metrics-addr 127.0.0.1:9464 || { ks_mode_end; continue; }
	write_manifest
	check "apply a shift that mirrors 100% to its shadow backend" ks_ctl apply -f "$KS_TMP/web.yaml"

	# --- 100%: every request replayed, the client sees the primary only ---
	res=$(load http://198.18.100.1:80/ --requests 300 --keepalive 6 --bodies --log "$KS_TMP/c1.log")
	if jq_ok "$res" 'd["ok"] == 300 and d["failed"] == 0 and list(d["answers"]) == ["stable"]'; then
		ok "300 requests (short and keep-alive, bodies to 1 MB) all answered by the primary only"
	else
		not_ok "300 requests all answered by the primary only: $res"
	fi
	ks_until 30 0.5 shadow_has 297
	pct=$(covered "$KS_TMP/c1.log" "$KS_TMP/shadow.log")
	if between 99 "$pct" 100; then
		ok "the shadow served $pct% of them, same request lines and bodies"
	else
		not_ok "the shadow served $pct% (want >= 99%) of the requests, same lines and bodies"
		diag "shadow log: $(lines "$KS_TMP/shadow.log") lines; status.mirror:"
		mirror_status | diag
	fi
	ks_until 20 0.5 results_reach 300
	m0=$(mirror_field match) x0=$(mirror_field mismatch) d0=$(mirror_field dropped)
	if [[ $x0 == 0 ]] && ((m0 >= 297)); then
		ok "answers compared: $m0 match, $x0 mismatch, $d0 dropped"
	else
		not_ok "answers compared: $m0 match, $x0 mismatch, $d0 dropped (want >= 297 match, 0 mismatch)"
	fi

	# --- a known subset answered differently ---
	load http://198.18.100.1:80/ --requests 100 --differ /diff --differ-every 4 \
		--log "$KS_TMP/c2.log" >/dev/null
	ks_until 20 0.5 results_reach $((m0 + x0 + d0 + 100))
	m1=$(mirror_field match) x1=$(mirror_field mismatch)
	if [[ $((x1 - x0)) == 25 && $((m1 - m0)) == 75 ]]; then
		ok "the 25 of 100 requests the shadow answers differently are the mismatches"
	else
		not_ok "mismatches: $((x1 - x0)) (want 25), matches: $((m1 - m0)) (want 75)"
	fi
	metric=$(in_ns "$KS_NODE" "$KS_PY" -c '
import sys, urllib.request
for l in urllib.request.urlopen("http://127.0.0.1:9464/metrics", timeout=5).read().decode().splitlines():
    if l.startswith("kshift_shadow_requests_total{") and "shift=\"web\"" in l and "result=\"mismatch\"" in l:
        print(l.split()[-1])')
	check "/metrics: kshift_shadow_requests_total{result=\"mismatch\"} of web is $x1 ($metric)" \
		test "$metric" = "$x1"
	check "get -o wide shows the last mismatches" \
		bash -c "\"$KSHIFTCTL\" --socket \"$KS_SOCK\" get web -o wide |
			grep -q 'mismatch .*: answer 1: primary 200, [0-9]* bytes, shadow 500'"

	# --- 10% of new flows ---
	check "mirror web shadow --percent 10" ks_ctl mirror web shadow --percent 10
	before=$(lines "$KS_TMP/shadow.log")
	load http://198.18.100.1:80/ --requests 1000 --log "$KS_TMP/c3.log" >/dev/null
	sleep 2
	seen=$(($(lines "$KS_TMP/shadow.log") - before))
	if between 50 "$seen" 150; then
		ok "at 10%, the shadow saw $seen of 1000 connections"
	else
		not_ok "at 10%, the shadow saw $seen of 1000 connections (want 50..150)"
	fi
	check "mirror web --off" ks_ctl mirror web --off
	check "get shows no mirror after --off" \
		bash -c "! \"$KSHIFTCTL\" --socket \"$KS_SOCK\" get web -o json | grep -q '\"percent\"'"

	# --- UDP: copies in tc, none in xdp; the shadow's answers dropped ---
	before=$(grep -c '^UDP' "$KS_TMP/shadow.log")
	res=$(in_ns "$KS_CLIENT" "$KS_PY" "$SHADOWD" udp 198.18.100.2 53 --count 200 --log "$KS_TMP/u.log")
	if jq_ok "$res" 'd["answers"] == {"198.18.100.2:53": 200}'; then
		ok "200 datagrams: 200 answers, all from the frontend, none from the shadow"
	else
		not_ok "200 datagrams: answers from the frontend only: $res"
	fi
	sleep 0.5
	copies=$(($(grep -c '^UDP' "$KS_TMP/shadow.log") - before))
	if [[ $mode == tc ]]; then
		dropped=$(mirror_field shadowRepliesDropped dns)
		if ((copies == 200)) && [[ $dropped == 200 ]]; then
			ok "tc: the shadow got all 200 datagrams; its 200 answers were dropped at the node"
		else
			not_ok "tc: shadow got $copies of 200 datagrams, $dropped answers dropped at the node"
		fi
	else
		check "xdp: no datagram copied (XDP cannot clone), as documented ($copies)" \
			test "$copies" -eq 0
	fi

	# --- the shadow down: the primary never notices ---
	ks_ctl mirror web --off >/dev/null
	off=$(load http://198.18.100.1:80/ --requests 200 --keepalive 2 --log "$KS_TMP/c4.log")
	ks_ctl mirror web shadow --percent 100 >/dev/null
	kill "$SHADOW_PID"
	killed=$(load http://198.18.100.1:80/ --requests 200 --keepalive 2 --log "$KS_TMP/c5.log")
	in_ns "$KS_PFX-ep1" ip link set eth0 down
	blackholed=$(load http://198.18.100.1:80/ --requests 200 --keepalive 2 --log "$KS_TMP/c6.log")
	p_off=$(jq_py "$off" 'd["p50_ms"]')
	for what in killed blackholed; do
		r=${!what}
		if jq_ok "$r" 'd["ok"] == 200 and d["failed"] == 0'; then
			ok "shadow $what: all 200 primary requests succeed"
		else
			not_ok "shadow $what: all 200 primary requests succeed: $r"
		fi
		# generous: 3x and 5 ms over the median with mirroring off
		if jq_ok "$r" "d['p50_ms'] <= 3 * $p_off + 5"; then
			ok "shadow $what: primary median $(jq_py "$r" 'd["p50_ms"]') ms (mirror off: $p_off ms)"
		else
			not_ok "shadow $what: primary median $(jq_py "$r" 'd["p50_ms"]') ms, mirror off $p_off ms"
		fi
	done
	check "kshiftd is still running" kill -0 "$KS_DAEMON_PID"
	ks_mode_end
done
ks_done
