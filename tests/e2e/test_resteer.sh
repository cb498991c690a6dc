#!/usr/bin/env bash
# End to end: no request lost to a dying pod (issue #9, docs/health.md).
# One backend of three endpoints (.2 .3 .4), a stream of new connections
# through the frontend, in tc and xdp mode:
#   - .3's server is killed without changing the manifest (its port is
#     closed: its kernel answers SYNs with resets): no connection fails, .3
#     is quarantined within 1 s, and back in service within 5 s of the
#     server's restart;
#   - .4's interface is taken down (no answer at all): no connection fails,
#     none waits for more than one SYN retransmission, and .4 is back in
#     service within 5 s of its interface coming up;
#   - .2 answers SYNs with ICMP port unreachable (an iptables REJECT rule in
#     its namespace): no connection fails, .2 is quarantined within 1 s,
#     and the unreachables are held back (drop_unreach_held) and counted
#     as .2's refusals in get and /metrics. (Recovery is the same as after
#     a reset, checked above, and not waited for again.)
# Then the same kill through kube-proxy-style iptables DNAT rules (statistic
# random mode), with kshift out of the way, and the same REJECT rule: their
# failures are measured and reported beside kshift's (diag lines), not
# asserted.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
ks_init resteer

VIP=198.18.100.1
VIP_URL=http://$VIP:80/
MIN_CONNS=2000
METRICS=127.0.0.1:9417 # in the node's namespace

write_manifest() {
	cat >"$1" <<EOF
apiVersion: kshift.dev/v1alpha1
kind: TrafficShift
metadata:
  name: web
spec:
  frontend:
    addresses: ["$VIP"]
    ports:
    - {port: 80, protocol: TCP}
  backends:
  - name: stable
    endpoints: ["198.18.2.2:8080", "198.18.2.3:8080", "198.18.2.4:8080"]
    weight: 1
EOF
}

# ep_health ADDR: the health kshiftctl get reports for endpoint ADDR:8080
ep_health() {
	ks_ctl get web -o json 2>/dev/null | "$KS_PY" -c '
import json, sys
try:
    d = json.load(sys.stdin)
    d = d[0] if isinstance(d, list) else d
    for b in d["status"]["backends"]:
        for e in b.get("endpointStatus", []):
            if e["address"] == sys.argv[1] + ":8080":
                print(e["health"].replace(" ", "-")); sys.exit()
except Exception as e:
    print("unreadable:", e, file=sys.stderr)
print("none")' "$1"
}
ep_is() {
	[[ $(ep_health "$1") == "$2" ]]
}

# serve ADDR: (re)starts the backend server of endpoint ADDR
serve() {
	local ns i
	ns=$(ks_ep_ns "$1") || return 1
	i=${ns##*-ep}
	rm -f "$KS_TMP/httpd$i.ready"
	ip netns exec "$ns" "$KS_PY" "$KS_E2E/httpd.py" --name stable --addr "$1" \
		--addr "$(tn_v6 "$1")" --tcp 8080 --ready-file "$KS_TMP/httpd$i.ready" \
		</dev/null >>"$KS_TMP/httpd$i.log" 2>&1 &
	KS_BG_PIDS+=($!)
	ks_wait_file "$KS_TMP/httpd$i.ready" 10
}

# kill_server ADDR: kills what runs in endpoint ADDR's namespace (its
# server), and returns once nothing listens on its port any more: from then
# on, its kernel answers SYNs with resets
kill_server() {
	local ns pid
	ns=$(ks_ep_ns "$1") || return 1
	for pid in $(ip netns pids "$ns"); do
		kill -KILL "$pid"
	done
	ks_until 5 0.01 eval "! in_ns $ns ss -Hltn 'sport = :8080' | grep -q ."
}

# reject ADDR -A|-D: adds or deletes, in endpoint ADDR's namespace, a rule
# that answers SYNs to its port with ICMP port unreachable (established
# connections go on), every one of them: no ICMP rate limit there
reject() {
	local ns
	ns=$(ks_ep_ns "$1") || return 1
	in_ns "$ns" sysctl -qw net.ipv4.icmp_ratelimit=0 &&
		in_ns "$ns" iptables -w "$2" INPUT -p tcp --dport 8080 --syn \
			-j REJECT --reject-with icmp-port-unreachable
}

# metric NAME LABELS: a sample's value on /metrics, scraped in the node's
# namespace ("" if absent)
metric() {
	in_ns "$KS_NODE" "$KS_PY" -c 'import sys, urllib.request
want = sys.argv[1] + "{" + sys.argv[2] + "} "
for line in urllib.request.urlopen("http://'$METRICS'/metrics", timeout=5).read().decode().splitlines():
    if line.startswith(want): print(line[len(want):]); break' "$1" "$2" 2>/dev/null
}

# ep_count ADDR KEY: counter KEY of endpoint ADDR:8080 in kshiftctl get
ep_count() {
	ks_ctl get web -o json 2>/dev/null | "$KS_PY" -c '
import json, sys
d = json.load(sys.stdin); d = d[0] if isinstance(d, list) else d
for b in d["status"]["backends"]:
    for e in b.get("endpointStatus", []):
        if e["address"] == sys.argv[1] + ":8080": print(e.get(sys.argv[2], 0)); sys.exit()
print(0)' "$1" "$2"
}

# stream_start NAME: a stream of new connections in the background
stream_start() {
	S_OUT=$KS_TMP/$1
	rm -f "$S_OUT.stop" "$S_OUT.ready"
	ks_client_bg "$S_OUT.json" stream "$VIP_URL" --stop-file "$S_OUT.stop" \
		--ready-file "$S_OUT.ready" --workers 4 --max-seconds 60
	S_PID=$KS_LAST_PID
	ks_wait_file "$S_OUT.ready" 10
}

# stream_stop [T]: stops the stream; S_RES: total, failures, errors, the
# durations of the slow ones (over 0.5 s: those that waited for a SYN
# retransmission), and with T (wall clock) the failures among connections
# under way at T ("inflight": established ones among them cannot move) and
# among those begun after it ("after", of "begun_after")
stream_stop() {
	touch "$S_OUT.stop"
	wait "$S_PID"
	S_RES=$("$KS_PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))["records"]
t = float(sys.argv[2]) if len(sys.argv) > 2 else None
errs = {}
for t0, t1, body, err in r:
    if err: errs[err] = errs.get(err, 0) + 1
slow = sorted(round(t1 - t0, 3) for t0, t1, body, err in r if not err and t1 - t0 > 0.5)
out = {"total": len(r), "failures": sum(errs.values()), "errors": errs,
       "slow": len(slow), "slowest": slow[-5:],
       "median_slow": slow[len(slow) // 2] if slow else 0}
if t is not None:
    out["inflight"] = sum(1 for t0, t1, b, e in r if e and t0 <= t)
    out["after"] = sum(1 for t0, t1, b, e in r if e and t0 > t)
    out["begun_after"] = sum(1 for t0, t1, b, e in r if t0 > t)
print(json.dumps(out))' "$S_OUT.json" "$@" 2>&1)
}


for mode in $(ks_modes); do
	ks_setup "$mode" stable:198.18.2.2 stable:198.18.2.3 stable:198.18.2.4 &&
		ks_httpd_all 8080 && ks_daemon_start --metrics-addr "$METRICS" ||
		{ ks_mode_end; continue; }
	write_manifest "$KS_TMP/web.yaml"
	check "kshiftctl apply: one backend, three endpoints" ks_ctl apply -f "$KS_TMP/web.yaml"
	ks_probe "$VIP_URL" || { ks_mode_end; continue; }
	check "every endpoint in service at first" ep_is 198.18.2.3 in-service

	# --- a server killed: resets ------------------------------------------
	stream_start kill || { not_ok "the stream starts"; ks_mode_end; continue; }
	sleep 1
	t_kill=$(ks_now)
	kill_server 198.18.2.3
	t_killed=$(ks_now)
	if ks_until 3 0.05 ep_is 198.18.2.3 quarantined; then
		t_q=$(ks_now)
		dt=$("$KS_PY" -c "print(round($t_q - $t_kill, 2))")
		check ".3 quarantined within 1 s of its server's death (${dt} s)" \
			"$KS_PY" -c "import sys; sys.exit(not $dt <= 1.0)"
	else
		not_ok ".3 quarantined within 1 s of its server's death (never: $(ep_health 198.18.2.3))"
	fi
	sleep 2
	serve 198.18.2.3 || not_ok "the server of .3 restarts"
	t_up=$(ks_now)
	if ks_until 8 0.1 ep_is 198.18.2.3 in-service; then
		dt=$("$KS_PY" -c "print(round($(ks_now) - $t_up, 2))")
		check ".3 back in service within 5 s of its restart (${dt} s)" \
			"$KS_PY" -c "import sys; sys.exit(not $dt <= 5.0)"
	else
		not_ok ".3 back in service within 5 s of its restart (never: $(ep_health 198.18.2.3))"
	fi
	sleep 1
	stream_stop "$t_killed"
	diag "stream across .3's death and restart: $S_RES"
	check "the stream made at least $MIN_CONNS connections ($(jq_py "$S_RES" 'd["total"]'))" \
		jq_ok "$S_RES" "d['total'] >= $MIN_CONNS"
	# connections .3's server had accepted die with it (a connection that
	# carried data never moves): at most one per client worker
	check "only connections .3 had accepted when killed were lost ($(jq_py "$S_RES" 'd["inflight"]') of at most 4)" \
		jq_ok "$S_RES" 'd["inflight"] <= 4'
	check "no connection begun after .3's death failed ($(jq_py "$S_RES" 'd["after"]') of $(jq_py "$S_RES" 'd["total"]'); errors $(jq_py "$S_RES" 'd["errors"]'))" \
		jq_ok "$S_RES" 'd["after"] == 0'
	k_kill=$S_RES
	ks_ctl get web -o json 2>/dev/null | "$KS_PY" -c '
import json, sys
d = json.load(sys.stdin); d = d[0] if isinstance(d, list) else d
for e in d["status"]["backends"][0]["endpointStatus"]: print(json.dumps(e))' | diag
	check "kshiftctl verdicts counts held-back resets and re-steered handshakes" \
		eval 'ks_ctl verdicts | grep -Eq "drop_refused[^0-9]*[1-9]" && ks_ctl verdicts | grep -Eq "nat_resteer[^0-9]*[1-9]"'

	# --- an interface down: no answer at all -------------------------------
	ns4=$(ks_ep_ns 198.18.2.4)
	stream_start down || { not_ok "the stream starts"; ks_mode_end; continue; }
	sleep 1
	ip -n "$ns4" link set eth0 down
	t_down=$(ks_now)
	# unanswered SYNs show only when clients retransmit them (1 s), and a
	# loaded box has been seen to take over 4 s to retransmit one to it
	ks_until 10 0.05 ep_is 198.18.2.4 quarantined ||
		not_ok ".4 quarantined after its interface went down ($(ep_health 198.18.2.4))"
	sleep 3
	ip -n "$ns4" link set eth0 up
	ip -n "$ns4" route replace default via 198.18.2.1 dev eth0
	t_up=$(ks_now)
	if ks_until 8 0.1 ep_is 198.18.2.4 in-service; then
		dt=$("$KS_PY" -c "print(round($(ks_now) - $t_up, 2))")
		check ".4 back in service within 5 s of its interface coming up (${dt} s)" \
			"$KS_PY" -c "import sys; sys.exit(not $dt <= 5.0)"
	else
		not_ok ".4 back in service within 5 s of its interface coming up (never: $(ep_health 198.18.2.4))"
	fi
	sleep 1
	stream_stop "$t_down"
	diag "stream across .4's interface down and up: $S_RES"
	# a connection .4 had accepted when its interface went down is lost
	# with it (a connection that carried data never moves): counted apart
	check "only connections .4 had accepted when its interface went down were lost ($(jq_py "$S_RES" 'd["inflight"]') of at most 4)" \
		jq_ok "$S_RES" 'd["inflight"] <= 4'
	# No answer at all costs each such connection one SYN retransmission
	# (1 s) against the client's 3 s limit; on a loaded 2-core box a
	# handful in ten thousand have been seen to run out of it. The count
	# is printed; the check holds it to one in two thousand.
	check "connections begun after .4 stopped answering: at most 1 in 2000 failed ($(jq_py "$S_RES" 'd["after"]') of $(jq_py "$S_RES" 'd["total"]'); errors $(jq_py "$S_RES" 'd["errors"]'))" \
		jq_ok "$S_RES" 'd["after"] <= max(1, d["total"] // 2000)'
	# one SYN retransmission is 1 s; a second would make 3 s
	check "no connection waited for more than one SYN retransmission (slowest: $(jq_py "$S_RES" 'd["slowest"]'))" \
		jq_ok "$S_RES" 'not d["slowest"] or max(d["slowest"]) < 2.5'
	diag "added latency of re-steered connections: median $(jq_py "$S_RES" 'd["median_slow"]') s of $(jq_py "$S_RES" 'd["slow"]') slow connections (server killed: median $(jq_py "$k_kill" 'd["median_slow"]') s of $(jq_py "$k_kill" 'd["slow"]'))"

	# --- ICMP port unreachable: a REJECT rule in the endpoint ---------------
	k_rej='{}'
	if command -v iptables >/dev/null; then
		stream_start unreach || { not_ok "the stream starts"; ks_mode_end; continue; }
		sleep 1
		held=$(ks_ctl verdicts -o json 2>/dev/null | tr -d ' \n' |
			grep -o '"drop_unreach_held":[0-9]*' | cut -d: -f2)
		t_rej=$(ks_now)
		reject 198.18.2.2 -A || not_ok "the REJECT rule goes in .2's namespace"
		if ks_until 3 0.05 ep_is 198.18.2.2 quarantined; then
			dt=$("$KS_PY" -c "print(round($(ks_now) - $t_rej, 2))")
			check ".2 quarantined within 1 s of answering SYNs with port unreachable (${dt} s)" \
				"$KS_PY" -c "import sys; sys.exit(not $dt <= 1.0)"
		else
			not_ok ".2 quarantined within 1 s of answering SYNs with port unreachable (never: $(ep_health 198.18.2.2))"
		fi
		sleep 2
		stream_stop "$t_rej"
		reject 198.18.2.2 -D
		diag "stream across .2's port unreachable: $S_RES"
		check "at least 500 connections begun while .2 answered with unreachables ($(jq_py "$S_RES" 'd["begun_after"]'))" \
			jq_ok "$S_RES" 'd["begun_after"] >= 500'
		check "no connection failed while .2 answered SYNs with port unreachable ($(jq_py "$S_RES" 'd["failures"]') of $(jq_py "$S_RES" 'd["total"]'); errors $(jq_py "$S_RES" 'd["errors"]'))" \
			jq_ok "$S_RES" 'd["failures"] == 0'
		now_held=$(ks_ctl verdicts -o json 2>/dev/null | tr -d ' \n' |
			grep -o '"drop_unreach_held":[0-9]*' | cut -d: -f2)
		check "unreachables held back (drop_unreach_held ${held:-?} -> ${now_held:-?}) and counted as .2's refusals ($(ep_count 198.18.2.2 refused))" \
			eval '(( ${now_held:-0} > ${held:-0} && $(ep_count 198.18.2.2 refused) > 0 ))'
		m_ref=$(metric kshift_endpoint_refused_total 'endpoint="198.18.2.2:8080"')
		m_held=$(metric kshift_verdict_packets_total 'reason="drop_unreach_held"')
		check "/metrics: .2's refusals (${m_ref:-none}) and unreachables held back (${m_held:-none})" \
			eval '(( ${m_ref:-0} > 0 && ${m_held:-0} > 0 ))'
		diag "added latency of connections re-steered off port unreachable: median $(jq_py "$S_RES" 'd["median_slow"]') s of $(jq_py "$S_RES" 'd["slow"]') slow connections"
		k_rej=$S_RES
	fi

	# --- the same death through kube-proxy-style iptables rules ------------
	if [[ $mode == tc ]] && command -v iptables >/dev/null; then
		ks_ctl delete web >/dev/null 2>&1
		in_ns "$KS_NODE" iptables -t nat -N KS-SVC &&
			in_ns "$KS_NODE" iptables -t nat -A PREROUTING -d "$VIP/32" -p tcp --dport 80 -j KS-SVC &&
			in_ns "$KS_NODE" iptables -t nat -A KS-SVC -p tcp -m statistic --mode random \
				--probability 0.33333333349 -j DNAT --to-destination 198.18.2.2:8080 &&
			in_ns "$KS_NODE" iptables -t nat -A KS-SVC -p tcp -m statistic --mode random \
				--probability 0.50000000000 -j DNAT --to-destination 198.18.2.3:8080 &&
			in_ns "$KS_NODE" iptables -t nat -A KS-SVC -p tcp -j DNAT --to-destination 198.18.2.4:8080
		stream_start iptables
		sleep 1
		kill_server 198.18.2.3
		t_killed=$(ks_now)
		sleep 2
		serve 198.18.2.3
		sleep 1
		stream_stop "$t_killed"
		diag "iptables DNAT, the same death and restart of .3: $S_RES"
		diag "failed connections during an endpoint's death, begun after it: kshift $(jq_py "$k_kill" 'd["after"]') of $(jq_py "$k_kill" 'd["begun_after"]'), iptables $(jq_py "$S_RES" 'd["after"]') of $(jq_py "$S_RES" 'd["begun_after"]') (under way at the moment: kshift $(jq_py "$k_kill" 'd["inflight"]'), iptables $(jq_py "$S_RES" 'd["inflight"]'))"
		check "iptables' failures are measured ($(jq_py "$S_RES" 'd["failures"]') of $(jq_py "$S_RES" 'd["total"]'))" \
			jq_ok "$S_RES" 'd["total"] > 0'
		stream_start iptables-unreach
		sleep 1
		t_rej=$(ks_now)
		reject 198.18.2.2 -A
		sleep 2
		stream_stop "$t_rej"
		reject 198.18.2.2 -D
		diag "iptables DNAT, .2 answering SYNs with port unreachable for 2 s: $S_RES"
		diag "failed connections begun after an endpoint began answering SYNs with port unreachable: kshift $(jq_py "$k_rej" 'd.get("after", "?")') of $(jq_py "$k_rej" 'd.get("begun_after", "?")'), iptables $(jq_py "$S_RES" 'd["after"]') of $(jq_py "$S_RES" 'd["begun_after"]')"
	fi
	ks_mode_end
done
ks_done
