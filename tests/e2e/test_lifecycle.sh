#!/usr/bin/env bash
# End to end: kshiftd's life cycle costs no connection, in tc and xdp mode.
#   - a stream of new connections and 40 keep-alive connections run across
#     SIGTERM + start and SIGKILL + start: none fails, every keep-alive
#     connection keeps its backend; the longest gap any client saw is
#     printed per restart kind
#   - the hash seed survives: connections from the same source ports as
#     before the restarts reach the same backend
#   - stopped, kshiftd leaves its programs attached and its pins in place;
#     started again it adopts them (in xdp mode after SIGKILL too: no
#     "busy" error), and the shift comes back from --config-dir
#   - a second kshiftd on the same pin path is refused naming the first's
#     pid, and the first keeps serving; one on the same interfaces with a
#     pin path of its own is refused naming the program that is there;
#     `--iface cli0,nosuch0` is refused with a message and changes nothing;
#     --uninstall while kshiftd runs is refused
#   - another tool's TC filter (clsact, u32) survives start, stop and
#     --uninstall
#   - --uninstall detaches everything (no XDP or tcx program left on any
#     interface) and removes every pin, saying what it removed; also what a
#     kshiftd from before bpf_links left (ks_xdp attached by netlink, ks_tc
#     as clsact filter 0x5ccf pref 1), and nothing else
set -uo pipefail
source "$(dirname "$0")/lib.sh"
ks_init lifecycle

VIP_URL=http://198.18.100.1:80/
DEVS=(cli0 ep0 ep1)

manifest() {
	cat <<EOF
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
EOF
}

# hooks: the programs attached to the node's veths, one "DEV KIND ID" a line
hooks() {
	ks_hooks "$KS_NODE" "${DEVS[@]}" | sort
}

# foreign_filter: the other tool's filter on ep0 is there
foreign_filter() {
	[[ $(tc -n "$KS_NODE" filter show dev ep0 ingress) == *u32* ]]
}

# pins_left: files under the test's bpffs besides the kernel's own
pins_left() {
	find "$KS_BPFFS" -mindepth 1 ! -type d ! -name maps.debug ! -name progs.debug
}

# second ARGS...: another kshiftd in the node namespace; its output in
# $out, its status in $rc
second() {
	out=$(timeout 20 ip netns exec "$KS_NODE" "$KSHIFTD" --mode "$KS_MODE" \
		--socket "$KS_TMP/second.sock" --state-dir "$KS_TMP/state2" "$@" 2>&1)
	rc=$?
}

# restart TERM|KILL: stops kshiftd that way and starts it again; the
# window in which it was gone goes into WINDOWS
restart() {
	local sig=$1 pid=$KS_DAEMON_PID t0 t1 rc n
	t0=$(ks_now)
	if [[ $sig == TERM ]]; then
		ks_daemon_stop
		rc=$?
		check "SIGTERM: kshiftd exits 0 (got $rc)" [ "$rc" = 0 ]
	else
		kill -KILL "$pid"
		wait "$pid" 2>/dev/null
		KS_DAEMON_PID=
	fi
	n=$(hooks | wc -l)
	check "after SIG$sig the programs stay attached ($n on ${#DEVS[@]} interfaces)" \
		[ "$n" = "${#DEVS[@]}" ]
	check "after SIG$sig the maps and links stay pinned" \
		test -e "$KS_PIN/ks_conns" -a -e "$KS_PIN/links/cli0"
	check "after SIG$sig another tool's TC filter is still there" foreign_filter
	# the dataplane serves on its own for a while
	sleep 1
	local lines
	lines=$(wc -l <"$KS_LOG")
	ks_daemon_start || return 1
	t1=$(ks_now)
	WINDOWS+=("SIG$sig+start $t0 $t1")
	check "after SIG$sig the new kshiftd took over the running links" \
		eval 'tail -n +$((lines + 1)) "$KS_LOG" | grep -q "took over the running link"'
	check "after SIG$sig no attach error (busy) in the log" \
		eval '! tail -n +$((lines + 1)) "$KS_LOG" | grep -qi "busy\|attaching to"'
	check "after SIG$sig the shift is back (from --config-dir)" \
		ks_wait_weights web "stable=50 canary=50" 10
}

# judge STREAM WINDOW...: failures of the stream, and per window the
# longest gap between two successful connections (ends) and the longest
# connection that overlapped it
judge() {
	"$KS_PY" - "$@" <<'PY'
import json, sys
try:
    recs = json.load(open(sys.argv[1]))["records"]
except Exception as e:
    print(json.dumps({"error": repr(e)})); sys.exit()
out = {"total": len(recs), "failures": 0, "errors": {}, "windows": {}}
for t0, t1, body, err in recs:
    if err:
        out["failures"] += 1
        out["errors"][err] = out["errors"].get(err, 0) + 1
ends = sorted(t1 for t0, t1, body, err in recs if not err)
spans = []
for w in sys.argv[2:]:
    name, a, b = w.split()
    a, b = float(a) - 0.5, float(b) + 0.5
    pts = [t for t in ends if a <= t <= b]
    edges = [a] + pts + [b]
    gap = max(y - x for x, y in zip(edges, edges[1:]))
    over = [t1 - t0 for t0, t1, body, err in recs if t1 >= a and t0 <= b]
    out["windows"][name] = {"gap": round(gap, 3), "longest": round(max(over or [0]), 3),
                            "connections": len(over)}
    spans.append((a, b))
# the same outside the restarts, for comparison
rest = [t1 - t0 for t0, t1, body, err in recs if all(t1 < a or t0 > b for a, b in spans)]
out["elsewhere_longest"] = round(max(rest or [0]), 3)
print(json.dumps(out, sort_keys=True))
PY
}

for mode in $(ks_modes); do
	WINDOWS=()
	ks_setup "$mode" stable:198.18.2.2 canary:198.18.3.2 &&
		ks_httpd_all 8080 || { ks_mode_end; continue; }
	# another tool's filter, there before kshift
	# (a u32 match-all with no action lets packets pass; this kernel has
	# no matchall classifier or gact action)
	tc -n "$KS_NODE" qdisc add dev ep0 clsact &&
		tc -n "$KS_NODE" filter add dev ep0 ingress u32 match u32 0 0 ||
		not_ok "setup: another tool's clsact filter on ep0"
	manifest >"$KS_CONF/web.yaml"
	ks_daemon_start || { ks_mode_end; continue; }
	check "the shift from --config-dir is loaded" ks_wait_weights web "stable=50 canary=50" 10
	ks_probe "$VIP_URL" || { ks_mode_end; continue; }
	check "after start another tool's TC filter is still there" foreign_filter
	# 5-tuples to repeat after the restarts
	ks_client split "$VIP_URL" 40 --save "$KS_TMP/ports.json" >/dev/null
	diag "attached: $(hooks | tr '\n' ' ')"

	ks_client_bg "$KS_TMP/ka.json" keepalive "$VIP_URL" 40 --ready-file "$KS_TMP/ka.ready" \
		--go-file "$KS_TMP/ka.go" --wait-max 80
	ka_pid=$KS_LAST_PID
	ks_client_bg "$KS_TMP/stream.json" stream "$VIP_URL" --stop-file "$KS_TMP/stream.stop" \
		--ready-file "$KS_TMP/stream.ready" --workers 2 --max-seconds 80
	stream_pid=$KS_LAST_PID
	ks_wait_file "$KS_TMP/ka.ready" 20 && ks_wait_file "$KS_TMP/stream.ready" 20 ||
		not_ok "the keep-alive and stream clients are running"
	sleep 0.5

	restart TERM
	sleep 0.5
	restart KILL
	sleep 0.5

	# the same 5-tuples hash as before (the seed was kept): with weights
	# 50/50, a new seed would send about half of them elsewhere, some 20
	# of 40. A few may move all the same, and rightly: a handshake left
	# unanswered for a second on a busy box moves to the other backend
	# (passive health, its one endpoint quarantined); 1 or 2 of 40 were
	# seen in CI runs, in either mode, before and after #8's changes, and
	# what moved is printed to trace it
	same=0 moved=0
	for b in stable canary; do
		res=$(ks_client split "$VIP_URL" 40 --reuse-ports "$KS_TMP/ports.json" --of "$b")
		same=$((same + $(jq_py "$res" "d['backends'].get('$b', 0)")))
		moved=$((moved + $(jq_py "$res" "d['ok'] - d['backends'].get('$b', 0) + d['failures']")))
		diag "ports of $b again: $res"
	done
	((moved)) && diag "verdicts: $(ks_ctl verdicts 2>&1 | tr -d ' \n' | head -c 800)"
	check "after the restarts the same source ports reach the same backend ($same same, $moved not)" \
		[ "$same" -ge 36 ]

	# rivals, while the first serves
	first=$KS_DAEMON_PID
	hooks0=$(hooks)
	second --iface cli0 --pin-path "$KS_PIN"
	check "a second kshiftd on the same pin path is refused (exit $rc)" [ "$rc" = 1 ]
	check "the refusal names the first kshiftd's pid ($first)" \
		eval '[[ $out == *"pid $first"* ]]'
	diag "second: $out"
	second --iface cli0 --pin-path "$KS_BPFFS/rival"
	check "a kshiftd with a pin path of its own on the same interface is refused (exit $rc)" \
		[ "$rc" = 1 ]
	check "the refusal names the program attached there" \
		eval '[[ $out == *cli0*program*ks_* ]]'
	diag "rival: $out"
	second --iface cli0,nosuch0 --pin-path "$KS_BPFFS/third"
	check "--iface cli0,nosuch0 is refused (exit $rc)" [ "$rc" = 1 ]
	check "the refusal says: kshiftd: --iface nosuch0: no such interface" \
		eval '[[ $out == *"kshiftd: --iface nosuch0: no such interface"* ]]'
	check "after the refusals the same programs are attached" [ "$(hooks)" = "$hooks0" ]
	check "the refused kshiftds left no pins" \
		eval '[ ! -e "$KS_BPFFS/rival" ] && [ ! -e "$KS_BPFFS/third" ]'
	out=$(timeout 20 ip netns exec "$KS_NODE" "$KSHIFTD" --uninstall --pin-path "$KS_PIN" 2>&1)
	rc=$?
	check "--uninstall while kshiftd runs is refused naming it (exit $rc)" \
		eval '[ "$rc" = 1 ] && [[ $out == *"pid $first"* ]]'
	res=$(ks_client split "$VIP_URL" 20)
	check "the first kshiftd keeps serving (20 connections)" jq_ok "$res" 'd["failures"] == 0'

	touch "$KS_TMP/stream.stop" "$KS_TMP/ka.go"
	wait "$stream_pid" "$ka_pid"
	ka=$(cat "$KS_TMP/ka.json")
	check "40 keep-alive connections open across both restarts each keep their backend" \
		jq_ok "$ka" 'd["kept"] == 40 and d["changed"] == 0 and d["errors"] == 0'
	jq_ok "$ka" 'd["kept"] == 40' || diag "keepalive: $(echo "$ka" | head -c 1500)"
	res=$(judge "$KS_TMP/stream.json" "${WINDOWS[@]}")
	check "no new connection failed across the restarts ($(jq_py "$res" 'd["total"]') connections)" \
		jq_ok "$res" 'd["failures"] == 0 and d["total"] > 0'
	for w in "${WINDOWS[@]}"; do
		name=${w%% *}
		diag "$name: longest gap between connections $(jq_py "$res" "d['windows']['$name']['gap']") s," \
			"longest connection $(jq_py "$res" "d['windows']['$name']['longest']") s," \
			"$(jq_py "$res" "d['windows']['$name']['connections']") connections"
		check "$name: no gap of 1.5 s or more in the stream (one lost SYN costs 1 s)" \
			jq_ok "$res" "d['windows']['$name']['gap'] < 1.5"
	done
	diag "outside the restarts: longest connection $(jq_py "$res" 'd["elsewhere_longest"]') s"
	diag "verdicts: $(ks_ctl verdicts 2>&1 | tr -s ' \n' ' ' | head -c 600)"
	jq_ok "$res" 'd["failures"] == 0' || diag "stream: $res"

	# --uninstall: the explicit way out
	ks_daemon_stop
	# what a kshiftd from before bpf_links left after a kill -9, on old0
	legacy=
	obj=$(dirname "$KSHIFTD")/kshift.bpf.o
	if [[ ! -f $obj ]]; then
		diag "no $obj beside kshiftd: the check of an older kshiftd's leftovers is skipped"
	elif ip -n "$KS_NODE" link add name old0 type veth peer name old1 &&
		ip -n "$KS_NODE" link set old0 up &&
		bpftool prog loadall "$obj" "$KS_BPFFS/legacy" &&
		in_ns "$KS_NODE" bpftool net attach xdpgeneric pinned "$KS_BPFFS/legacy/ks_xdp" \
			dev old0 &&
		tc -n "$KS_NODE" qdisc add dev old0 clsact &&
		tc -n "$KS_NODE" filter add dev old0 ingress pref 1 handle 0x5ccf \
			bpf da object-pinned "$KS_BPFFS/legacy/ks_tc"; then
		legacy=1
		rm -rf "$KS_BPFFS/legacy"
	else
		not_ok "setup: an older kshiftd's leftovers on old0"
	fi
	out=$(timeout 20 ip netns exec "$KS_NODE" "$KSHIFTD" --uninstall --pin-path "$KS_PIN" 2>&1)
	rc=$?
	diag "uninstall: $out"
	check "--uninstall exits 0 (got $rc)" [ "$rc" = 0 ]
	check "--uninstall says what it removed (cli0, map pins)" \
		eval '[[ $out == *uninstalled*cli0*map* ]]'
	left=$(hooks)
	check "after --uninstall no XDP or tcx program is left on any interface" [ -z "$left" ]
	[[ -n $left ]] && diag "left: $left"
	check "after --uninstall ip link shows no XDP program" \
		eval '! ip -n "$KS_NODE" link show | grep -q "prog/xdp"'
	left=$(pins_left)
	check "after --uninstall no pins are left" [ -z "$left" ]
	[[ -n $left ]] && diag "left: $left"
	check "after --uninstall another tool's TC filter is still there" foreign_filter
	if [[ -n $legacy ]]; then
		check "--uninstall names an older kshiftd's leftovers (old0, xdp and tc filter)" \
			eval '[[ $out == *"old0 (xdp, left by an older kshiftd)"* && $out == *"old0 (tc filter"* ]]'
		check "after --uninstall old0 has no XDP program" \
			eval '[ -z "$(ks_hooks "$KS_NODE" old0)" ]'
		check "after --uninstall old0 has no tc filter (its clsact stays)" \
			eval '[ -z "$(tc -n "$KS_NODE" filter show dev old0 ingress)" ]'
	fi
	res=$(ks_client connect 198.18.100.1 80 --timeout 1)
	check "after --uninstall the VIP is no longer steered" \
		jq_ok "$res" '"connected" not in d["outcomes"]'
	ks_mode_end
done
ks_done
