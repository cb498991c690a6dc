#!/usr/bin/env bash
# End to end: interfaces that come and go (pods), in tc and xdp mode.
# kshiftd runs with --iface 'cli*,ep*' (glob patterns), then:
#   - a new pod (namespace and veth ep1) is created: kshiftd attaches to
#     ep1 within a second, and once the shift lists the pod, connections
#     through the VIP reach it (its replies cross ep1, so they need kshift
#     there)
#   - in tc mode, the pods' veths take packets straight to the pod's side
#     (kshiftctl verdicts: "tc, to peer"); a tbf or clsact added to one ends
#     that within seconds (the steered packets then cross the tbf), its
#     removal brings it back; a veth with both ends in the node never has it
#   - a new client (namespace and veth cli1) is created: attached within a
#     second, and HTTP through the VIP works from it
#   - cli1 is deleted: kshiftd forgets it (log, pin gone); created again:
#     attached again, and steered again
#   - cli1 renamed cli2 (still matching): its pin follows, still steered;
#     renamed zz2 (matching nothing): detached
#   - an interface a pattern matches that carries another program at start
#     (here a rival kshiftd's) is skipped with a warning naming it, and the
#     start goes on; its program is left alone
set -uo pipefail
source "$(dirname "$0")/lib.sh"
ks_init ifaces

VIP_URL=http://198.18.100.1:80/

# manifest ENDPOINT...: the shift web, one backend with these endpoints
manifest() {
	local eps
	eps=$(printf '"%s:8080", ' "$@")
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
    endpoints: [${eps%, }]
    weight: 1
EOF
}

# add_pod I ADDR: a new endpoint namespace behind the node's veth epI, as
# scripts/testnet.sh builds them, with its HTTP server
add_pod() {
	local i=$1 addr=$2 ns=$KS_PFX-ep$1 net=${2%.*}
	local v6 gw6
	v6=$(tn_v6 "$addr") gw6=$(tn_v6 "$net.1")
	KS_NSES+=("$ns")
	tn_ns_add "$ns" &&
		ip -n "$KS_NODE" link add name "ep$i" type veth peer name eth0 netns "$ns" &&
		ip -n "$KS_NODE" addr add "$net.1/32" dev "ep$i" &&
		ip netns exec "$KS_NODE" ethtool -K "ep$i" tx off >/dev/null &&
		ip -n "$KS_NODE" link set "ep$i" up &&
		ip -n "$KS_NODE" route add "$addr/32" dev "ep$i" &&
		ip -n "$ns" addr add "$addr/24" dev eth0 &&
		ip -n "$ns" addr add "$v6/64" dev eth0 nodad &&
		ip -n "$ns" link set eth0 up &&
		ip -n "$ns" route add default via "$net.1" dev eth0 || return
	ip netns exec "$ns" "$KS_PY" "$KS_E2E/httpd.py" --name "pod$i" --addr "$addr" --tcp 8080 \
		--ready-file "$KS_TMP/pod$i.ready" </dev/null >>"$KS_TMP/pod$i.log" 2>&1 &
	disown
	ks_wait_file "$KS_TMP/pod$i.ready" 10
}

# add_client NAME ADDR: a client namespace behind the node's veth NAME
# (198.18.1.0/24, routed by a /32 like a pod)
add_client() {
	local dev=$1 addr=$2 ns=$KS_PFX-$1
	[[ " ${KS_NSES[*]} " == *" $ns "* ]] || { KS_NSES+=("$ns"); tn_ns_add "$ns" || return; }
	ip -n "$KS_NODE" link add name "$dev" type veth peer name eth0 netns "$ns" &&
		ip -n "$KS_NODE" addr add 198.18.1.1/32 dev "$dev" &&
		ip netns exec "$KS_NODE" ethtool -K "$dev" tx off >/dev/null &&
		ip -n "$KS_NODE" link set "$dev" up &&
		ip -n "$KS_NODE" route add "$addr/32" dev "$dev" &&
		ip -n "$ns" addr add "$addr/24" dev eth0 &&
		ip netns exec "$ns" ethtool -K eth0 tx off >/dev/null &&
		ip -n "$ns" link set eth0 up &&
		ip -n "$ns" route add default via 198.18.1.1
}

# logged_within SECONDS TEXT: kshiftd's log (past line $mark) has TEXT
# within SECONDS; prints how long it took
logged_within() {
	local t0=${EPOCHREALTIME//[!0-9]/} t1
	want=$2
	ks_until "$1" 0.02 eval 'tail -n +$((mark + 1)) "$KS_LOG" | grep -qF -- "$want"' || return 1
	t1=${EPOCHREALTIME//[!0-9]/}
	took=$(((t1 - t0) / 1000))
}

# iface_mode DEV: how kshiftd serves DEV (kshiftctl verdicts); mode_is DEV
# MODE: it is MODE
iface_mode() {
	jq_py "$(ks_ctl verdicts -o json 2>&1)" "d['interfaces'].get('$1', 'not served')"
}
mode_is() {
	[[ $(iface_mode "$1") == "$2" ]]
}

# tbf_sent DEV: packets DEV's root qdisc sent
tbf_sent() {
	tc -n "$KS_NODE" -s qdisc show dev "$1" root | awk '/Sent/ { print $4; exit }'
}

# from NS: 20 connections through the VIP from a client namespace
from() {
	in_ns "$1" "$KS_PY" "$KS_E2E/client.py" split "$VIP_URL" 20 --max-failures 3
}

for mode in $(ks_modes); do
	ks_setup "$mode" stable:198.18.2.2 && ks_httpd_all 8080 || { ks_mode_end; continue; }
	manifest 198.18.2.2 >"$KS_CONF/web.yaml"
	# ep9 carries a rival's program (a kshiftd with a pin path of its own,
	# stopped: its link stays)
	ip -n "$KS_NODE" link add name ep9 type veth peer name x9 &&
		ip -n "$KS_NODE" link set ep9 up
	ip netns exec "$KS_NODE" "$KSHIFTD" --iface ep9 --mode "$mode" --pin-path "$KS_BPFFS/rival" \
		--socket "$KS_TMP/rival.sock" --state-dir "$KS_TMP/rival-state" \
		>"$KS_TMP/rival.log" 2>&1 &
	rival=$!
	ks_wait_file "$KS_TMP/rival.sock" 15
	kill -TERM "$rival"
	wait "$rival"
	rival_hooks=$(ks_hooks "$KS_NODE" ep9)
	[[ -n $rival_hooks ]] || not_ok "setup: a rival program on ep9 ($(tail -3 "$KS_TMP/rival.log"))"
	ks_daemon_start --iface 'cli*,ep*' || { ks_mode_end; continue; }
	check "ep9, matched by a pattern, with a program not ours is skipped with a warning" \
		eval 'grep -q "ep9: .*program .* is attached and is not ours" "$KS_LOG"'
	check "ep9's program is left alone" [ "$(ks_hooks "$KS_NODE" ep9)" = "$rival_hooks" ]
	ks_probe "$VIP_URL" || { ks_mode_end; continue; }

	# a new pod
	mark=$(wc -l <"$KS_LOG")
	add_pod 1 198.18.2.3 || not_ok "setup: a new pod behind ep1"
	if logged_within 1 "attached to ep1"; then
		ok "a new pod's veth ep1 is attached (log: attached to ep1, ${took} ms)"
	else
		not_ok "a new pod's veth ep1 is attached within 1 s (log: attached to ep1)"
	fi
	manifest 198.18.2.2 198.18.2.3 >"$KS_CONF/web.yaml"
	ks_until 10 0.2 eval '[[ $(ks_ctl get web -o json 2>/dev/null) == *198.18.2.3* ]]'
	res=$(ks_client split "$VIP_URL" 60)
	diag "split: $res"
	check "connections through the VIP reach the new pod, none fails" \
		jq_ok "$res" 'd["failures"] == 0 and d["endpoints"].get("pod1 198.18.2.3", 0) > 0'

	# tc: what TC forwards into a pod's veth is handed to the pod's side
	# directly (bpf_redirect_peer), unless something on the veth's egress
	# would be passed by: a qdisc (here a tbf, as the bandwidth plugin
	# shapes a pod) or clsact ends it within seconds, and the steered
	# packets then cross the tbf; its removal brings it back. A veth with
	# both ends in the node never has it.
	if [[ $mode == tc ]]; then
		check "ep0 and ep1, pods' veths, are 'tc, to peer' ($(iface_mode ep0), $(iface_mode ep1))" \
			eval '[[ $(iface_mode ep0) == "tc, to peer" && $(iface_mode ep1) == "tc, to peer" ]]'
		ip -n "$KS_NODE" link add name ep8 type veth peer name x8 &&
			ip -n "$KS_NODE" link set ep8 up
		check "ep8, both ends in the node, is 'tc' ($(ks_until 3 0.05 mode_is ep8 tc; iface_mode ep8))" \
			mode_is ep8 tc
		tc -n "$KS_NODE" qdisc add dev ep1 root tbf rate 200mbit burst 64kb latency 100ms
		check "a tbf on ep1: 'tc' within 3 s ($(ks_until 3 0.05 mode_is ep1 tc; iface_mode ep1))" \
			mode_is ep1 tc
		before=$(tbf_sent ep1)
		res=$(ks_client split "$VIP_URL" 60)
		sent=$(($(tbf_sent ep1) - before))
		n=$(jq_py "$res" 'd["endpoints"].get("pod1 198.18.2.3", 0)')
		check "the steered packets cross it: $sent for pod1's $n connections ($(jq_py "$res" 'd["failures"]') failed)" \
			jq_ok "$res" "d['failures'] == 0 and $n > 0 and $sent >= 3 * $n"
		tc -n "$KS_NODE" qdisc del dev ep1 root
		check "the tbf gone: 'tc, to peer' again within 3 s" ks_until 3 0.05 mode_is ep1 "tc, to peer"
		tc -n "$KS_NODE" qdisc add dev ep1 clsact
		check "a clsact on ep1: 'tc' within 3 s" ks_until 3 0.05 mode_is ep1 tc
		tc -n "$KS_NODE" qdisc del dev ep1 clsact
		check "the clsact gone: 'tc, to peer' again within 3 s" \
			ks_until 3 0.05 mode_is ep1 "tc, to peer"
		res=$(ks_client split "$VIP_URL" 40)
		check "connections through the VIP still reach both pods, none fails" \
			jq_ok "$res" 'd["failures"] == 0 and len(d["endpoints"]) == 2'
	fi

	# a new client
	mark=$(wc -l <"$KS_LOG")
	add_client cli1 198.18.1.3 || not_ok "setup: a new client behind cli1"
	if logged_within 1 "attached to cli1"; then
		ok "a new client's veth cli1 is attached (log: attached to cli1, ${took} ms)"
	else
		not_ok "a new client's veth cli1 is attached within 1 s (log: attached to cli1)"
	fi
	check "cli1's link is pinned" test -e "$KS_PIN/links/cli1"
	res=$(from "$KS_PFX-cli1")
	diag "from cli1: $res"
	check "HTTP through the VIP works from the new client (20 connections)" \
		jq_ok "$res" 'd["failures"] == 0 and d["ok"] == 20'

	# gone, and back
	mark=$(wc -l <"$KS_LOG")
	ip -n "$KS_NODE" link del cli1
	if logged_within 1 "forgot cli1"; then
		ok "a deleted veth is forgotten (log: forgot cli1, ${took} ms)"
	else
		not_ok "a deleted veth is forgotten within 1 s (log: forgot cli1)"
	fi
	check "cli1's pin is gone" test ! -e "$KS_PIN/links/cli1"
	mark=$(wc -l <"$KS_LOG")
	add_client cli1 198.18.1.3 || not_ok "setup: cli1 created again"
	if logged_within 1 "attached to cli1"; then
		ok "cli1 created again is attached again (${took} ms)"
	else
		not_ok "cli1 created again is attached again within 1 s"
	fi
	n=$(ks_hooks "$KS_NODE" cli1 | wc -l)
	check "cli1 carries exactly one kshift program ($n)" [ "$n" = 1 ]
	res=$(from "$KS_PFX-cli1")
	check "HTTP through the VIP works from cli1 again (20 connections)" \
		jq_ok "$res" 'd["failures"] == 0 and d["ok"] == 20'
	res=$(ks_client split "$VIP_URL" 20)
	check "the first client is still steered" jq_ok "$res" 'd["failures"] == 0'

	# renamed
	mark=$(wc -l <"$KS_LOG")
	ip -n "$KS_NODE" link set cli1 name cli2
	check "cli1 renamed cli2 is followed (log: cli1 is now cli2)" logged_within 1 "cli1 is now cli2"
	check "its pin follows (links/cli2, no links/cli1)" \
		eval '[ -e "$KS_PIN/links/cli2" ] && [ ! -e "$KS_PIN/links/cli1" ]'
	res=$(from "$KS_PFX-cli1")
	check "HTTP through the VIP works from behind cli2" jq_ok "$res" 'd["failures"] == 0'
	mark=$(wc -l <"$KS_LOG")
	ip -n "$KS_NODE" link set cli2 name zz2
	check "cli2 renamed zz2, matching nothing, is detached (log)" \
		logged_within 1 "detached from cli2"
	n=$(ks_hooks "$KS_NODE" zz2 | wc -l)
	check "zz2 carries no program ($n), and no pin is left for it" \
		eval '[ "$n" = 0 ] && [ ! -e "$KS_PIN/links/cli2" ] && [ ! -e "$KS_PIN/links/zz2" ]'
	# interfaces that do not match stay untouched
	ip -n "$KS_NODE" link add name other0 type veth peer name other1
	sleep 0.3
	n=$(ks_hooks "$KS_NODE" other0 other1 | wc -l)
	check "an interface matching no pattern is left alone (other0: $n programs)" [ "$n" = 0 ]
	check "the log never mentions it" eval '! grep -q other0 "$KS_LOG"'

	ks_daemon_stop
	ip netns exec "$KS_NODE" "$KSHIFTD" --uninstall --pin-path "$KS_PIN" >/dev/null 2>&1
	ip netns exec "$KS_NODE" "$KSHIFTD" --uninstall --pin-path "$KS_BPFFS/rival" >/dev/null 2>&1
	ks_mode_end
done
ks_done
