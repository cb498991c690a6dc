#!/usr/bin/env bash
# End to end: node-local clients (kshiftd --cgroup, bpf/lib/sock.h).
# Processes in the node's own network namespace, in a cgroup of this test's,
# call frontends:
#   - TCP through the frontend works; a 100/0 split sends every connection
#     to stable; a 50/50 split of 200 connections lands on both, within a
#     loose margin; kshiftctl get counts them as new flows
#   - getpeername shows the frontend, IPv4 and IPv6, and IPv4-mapped on an
#     IPv6 socket
#   - UDP through an IPv4 and an IPv6 frontend: every datagram answered,
#     recvfrom says the frontend sent it; connected UDP sockets too
#   - a frontend without endpoints: connect refused at once
#   - a process of the node outside the cgroup is not steered; a process in
#     the cgroup but in another network namespace (the client's) is steered
#     by the packet path, not by the socket hooks
#   - a removed endpoint's node-local connections are closed at once
#     (ECONNABORTED); a draining one's and the others' carry on
#   - --cgroup naming no cgroup v2 directory is refused, leaving nothing
#   - the hooks outlive kshiftd, are adopted by the next one (started with
#     only the DaemonSet's capabilities) with the same links; a kshiftd
#     started without --cgroup detaches them (as --uninstall does, through
#     the same code); kshiftd --uninstall leaves no pin
# Socket hooks do not depend on the attach mode: one mode (the first of
# KS_MODES) is enough. The cgroup and its cgroup2 mount are removed on exit.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
ks_init nodelocal

NL_MNT=
NL_CG=
NL_CAPS=+bpf,+perfmon,+net_admin # the DaemonSet's

# the test's own cgroup2 mount (hosts differ in where theirs is, and
# `ip netns exec` hides /sys/fs/cgroup from kshiftd), and a cgroup in it
nl_cg_up() {
	NL_MNT=$(mktemp -d "/tmp/kse-nodelocal-$$-cg-XXXXXX") || return
	mount -t cgroup2 none "$NL_MNT" || return
	NL_CG=$NL_MNT/kshift-test-$$
	mkdir "$NL_CG"
}

nl_cg_down() {
	local pid i
	[[ -n $NL_MNT ]] || return 0
	if [[ -d $NL_CG ]]; then
		for pid in $(cat "$NL_CG/cgroup.procs" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null
		done
		for ((i = 0; i < 50; i++)); do
			rmdir "$NL_CG" 2>/dev/null && break
			sleep 0.1
		done
	fi
	mountpoint -q "$NL_MNT" && umount "$NL_MNT"
	rmdir "$NL_MNT" 2>/dev/null
	NL_MNT=
}

trap 'nl_cg_down; ks_teardown' EXIT
trap 'nl_cg_down; ks_teardown; trap - EXIT; exit 130' INT
trap 'nl_cg_down; ks_teardown; trap - EXIT; exit 143' TERM

# in_cg NS CMD...: CMD in namespace NS, as a process of the test's cgroup
# (`ip netns exec` keeps the cgroup it is started in)
in_cg() {
	local ns=$1
	shift
	bash -c 'echo $$ >"$1/cgroup.procs" && shift && exec ip netns exec "$@"' \
		in_cg "$NL_CG" "$ns" "$@"
}

# node_client ARGS...: client.py in the node namespace, in the cgroup
node_client() {
	in_cg "$KS_NODE" "$KS_PY" "$KS_E2E/client.py" "$@"
}

# peername HOST PORT [v6]: what getpeername says of a TCP connection to
# HOST:PORT made in the node namespace, in the cgroup ("ADDR PORT")
peername() {
	in_cg "$KS_NODE" "$KS_PY" -c '
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in host or sys.argv[3:] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(3)
try:
    s.connect((host, port))
    p = s.getpeername()
    print(p[0], p[1])
except OSError as e:
    print("error", e)' "$@"
}

write_manifests() {
	cat >"$KS_TMP/web.yaml" <<'EOF'
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
    endpoints: ["198.18.2.2:8080", "198.18.2.3:8080", "[2001:2:0:2::2]:8080", "[2001:2:0:2::3]:8080"]
    weight: 100
  - name: canary
    endpoints: ["198.18.3.2:8080", "[2001:2:0:3::2]:8080"]
    weight: 0
EOF
	# stable's 198.18.2.3 removed, canary's 198.18.3.2 draining
	cat >"$KS_TMP/web-removed.yaml" <<'EOF'
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
    endpoints: ["198.18.2.2:8080", "[2001:2:0:2::2]:8080", "[2001:2:0:2::3]:8080"]
    weight: 50
  - name: canary
    endpoints: [{address: "198.18.3.2:8080", draining: true}, "[2001:2:0:3::2]:8080"]
    weight: 50
EOF
	cat >"$KS_TMP/dns.yaml" <<'EOF'
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
    endpoints: ["198.18.2.2:5353", "198.18.2.3:5353"]
    weight: 1
EOF
	cat >"$KS_TMP/dns6.yaml" <<'EOF'
apiVersion: kshift.dev/v1alpha1
kind: TrafficShift
metadata:
  name: dns6
spec:
  frontend:
    addresses: ["2001:2:0:100::2"]
    ports:
    - {port: 53, protocol: UDP}
  backends:
  - name: stable
    endpoints: ["[2001:2:0:2::2]:5353", "[2001:2:0:2::3]:5353"]
    weight: 1
EOF
	cat >"$KS_TMP/empty.yaml" <<'EOF'
apiVersion: kshift.dev/v1alpha1
kind: TrafficShift
metadata:
  name: empty
spec:
  frontend:
    addresses: ["198.18.100.9"]
    ports:
    - {port: 80, protocol: TCP}
  backends:
  - name: stable
    endpoints: []
    weight: 1
EOF
}

# counter SHIFT BACKEND FIELD: a backend's counter as kshiftctl get reports it
counter() {
	jq_py "$(ks_ctl get "$1" -o json 2>/dev/null)" \
		'[b for b in d["status"]["backends"] if b["name"] == "'"$2"'"][0]["'"$3"'"]'
}
new_flows() {
	counter "$1" "$2" newFlows
}

# udp_check FRONTEND PORT: datagrams from fresh sockets, then one connected
udp_check() {
	local fe=$1 port=$2 src res
	src=$fe:$port
	[[ $fe == *:* ]] && src="[$fe]:$port"
	res=$(node_client udp "$fe" "$port" --count 30 --new-socket-each --timeout 2)
	diag "node udp $src: $res"
	check "node-local UDP $src: 30 datagrams, 30 answers ($(jq_py "$res" 'd["replies"]'))" \
		jq_ok "$res" 'd["replies"] == 30'
	check "node-local UDP $src: recvfrom says every answer came from $src ($(jq_py "$res" 'd["sources"]'))" \
		jq_ok "$res" 'd["sources"].get("'"$src"'", 0) == 30'
	check "node-local UDP $src: both endpoints answer ($(jq_py "$res" 'd["endpoints"]'))" \
		jq_ok "$res" 'len(d["endpoints"]) == 2'
	res=$(node_client udp "$fe" "$port" --count 10 --connected --timeout 2)
	diag "node udp connected $src: $res"
	check "node-local UDP $src: a connected socket gets all 10 answers" \
		jq_ok "$res" 'd["replies"] == 10'
}

# hooks: the programs attached to the test's cgroup, one "TYPE NAME" a line
hooks() {
	bpftool -j cgroup show "$NL_CG" 2>/dev/null |
		"$KS_PY" -c 'import json, sys
for h in json.load(sys.stdin): print(h.get("attach_type"), h.get("name"))' 2>/dev/null
}

# link_ids: the ids of the pinned cgroup links, in pin order
link_ids() {
	local f
	for f in "$KS_PIN"/sock/*; do
		bpftool -j link show pinned "$f" 2>/dev/null |
			"$KS_PY" -c 'import json, sys; print(json.load(sys.stdin)["id"])' 2>/dev/null
	done | tr '\n' ' '
}

# hook_progs: the program ids attached to the cgroup
hook_progs() {
	bpftool -j cgroup show "$NL_CG" 2>/dev/null |
		"$KS_PY" -c 'import json, sys; print(sorted(h["id"] for h in json.load(sys.stdin)))' 2>/dev/null
}

mode=$(ks_modes | awk '{print $1}')
VIP=http://198.18.100.1:80/
VIP6='http://[2001:2:0:100::1]:80/'
while :; do
	ks_setup "$mode" stable:198.18.2.2 stable:198.18.2.3 canary:198.18.3.2 &&
		ks_httpd_all 8080 5353 || break
	if ! nl_cg_up; then
		not_ok "setup: a cgroup2 mount and a cgroup at $NL_MNT"
		break
	fi
	# a directory that is no cgroup v2 one: refused before anything is
	# attached or pinned
	out=$(timeout 20 ip netns exec "$KS_NODE" "$KSHIFTD" --iface "$(ks_ifaces)" \
		--mode "$KS_MODE" --socket "$KS_TMP/refused.sock" --pin-path "$KS_PIN" \
		--state-dir "$KS_TMP/refused" --max-flows 65536 --cgroup "$KS_TMP" 2>&1)
	rc=$?
	diag "$out"
	check "kshiftd --cgroup DIR not cgroup v2: refused (exit $rc), named, nothing attached or pinned" \
		eval '[ "$rc" = 1 ] && grep -q "not a cgroup v2" <<<"$out" && [ ! -e "$KS_PIN" ] &&
			[ -z "$(ks_hooks "$KS_NODE" cli0 ep0)" ]'

	ks_daemon_start --cgroup "$NL_CG" || break
	n=$(hooks | wc -l)
	check "kshiftd --cgroup: 8 socket hooks on the cgroup ($n)" [ "$n" = 8 ]
	hooks | diag

	write_manifests
	for m in web dns dns6 empty; do
		if out=$(ks_ctl apply -f "$KS_TMP/$m.yaml" 2>&1); then
			ok "kshiftctl apply -f $m.yaml"
		else
			not_ok "kshiftctl apply -f $m.yaml"
			diag "$out"
		fi
	done

	# before: a node-local client is no client at all
	res=$(in_ns "$KS_NODE" "$KS_PY" "$KS_E2E/client.py" connect 198.18.100.1 80 --timeout 2)
	diag "node, outside the cgroup: $res"
	check "a node process outside the cgroup is not steered (connect: $(jq_py "$res" 'd["outcomes"]'))" \
		jq_ok "$res" '"connected" not in d["outcomes"]'

	res=$(node_client split "$VIP" 20 --max-failures 3)
	diag "node split 100/0: $res"
	check "node-local TCP through $VIP: 20 of 20 ($(jq_py "$res" 'd["ok"]'))" \
		jq_ok "$res" 'd["ok"] == 20'
	check "100/0: every node-local connection to stable ($(jq_py "$res" 'd["backends"]'))" \
		jq_ok "$res" 'd["backends"].get("stable", 0) == 20 and len(d["backends"]) == 1'
	res=$(node_client split "$VIP6" 10 --max-failures 3)
	diag "node split v6: $res"
	check "node-local TCP through $VIP6: 10 of 10, stable ($(jq_py "$res" 'd["backends"]'))" \
		jq_ok "$res" 'd["ok"] == 10 and d["backends"].get("stable", 0) == 10'

	s0=$(new_flows web stable) c0=$(new_flows web canary)
	out=$(ks_ctl set web stable=50 canary=50 2>&1) || { not_ok "kshiftctl set web 50/50"; diag "$out"; }
	res=$(node_client split "$VIP" 200 --max-failures 5)
	diag "node split 50/50: $res"
	st=$(jq_py "$res" 'd["backends"].get("stable", 0)')
	ca=$(jq_py "$res" 'd["backends"].get("canary", 0)')
	check "50/50: 200 node-local connections, none failed ($(jq_py "$res" 'd["failures"]'))" \
		jq_ok "$res" 'd["ok"] == 200'
	check "50/50: stable $st, canary $ca, each within 60..140" \
		eval 'between 60 "$st" 140 && between 60 "$ca" 140'
	s1=$(new_flows web stable) c1=$(new_flows web canary)
	check "kshiftctl get counts the node-local connections: stable +$((s1 - s0)) (client saw $st), canary +$((c1 - c0)) (client saw $ca)" \
		eval '[ $((s1 - s0)) = "$st" ] && [ $((c1 - c0)) = "$ca" ]'

	p=$(peername 198.18.100.1 80)
	check "getpeername of a node-local connection says 198.18.100.1 80 ($p)" [ "$p" = "198.18.100.1 80" ]
	p=$(peername 2001:2:0:100::1 80)
	check "getpeername (IPv6) says 2001:2:0:100::1 80 ($p)" [ "$p" = "2001:2:0:100::1 80" ]
	p=$(peername ::ffff:198.18.100.1 80)
	check "getpeername (IPv4-mapped on an IPv6 socket) says ::ffff:198.18.100.1 80 ($p)" \
		[ "$p" = "::ffff:198.18.100.1 80" ]

	p0=$(counter dns stable packets)
	udp_check 198.18.100.2 53
	n=$(new_flows dns stable) p1=$(counter dns stable packets)
	check "kshiftctl get counts node-local UDP: a new flow a socket (31: $n), a packet a connect or unconnected datagram (31: $((p1 - p0)))" \
		eval '[ "$n" = 31 ] && [ $((p1 - p0)) = 31 ]'
	udp_check 2001:2:0:100::2 53

	res=$(node_client connect 198.18.100.9 80 --count 2 --timeout 3)
	diag "node connect, no endpoints: $res"
	check "no endpoints: a node-local connect is refused at once ($(jq_py "$res" 'd["outcomes"]'), $(jq_py "$res" 'd["max_seconds"]') s)" \
		jq_ok "$res" 'd["outcomes"].get("ECONNREFUSED", 0) == 2 and d["max_seconds"] < 1.0'
	n=$(jq_py "$(ks_ctl get empty -o json 2>/dev/null)" 'd["status"]["rejectedFlows"]')
	check "kshiftctl get counts the refused node-local connects as rejected flows (2: $n)" [ "$n" = 2 ]

	# a client namespace's process in the cgroup: its packets are steered
	# at the node's interface (a flow in the connection table), its socket
	# is not rewritten (that would leave no flow there)
	res=$(in_cg "$KS_CLIENT" "$KS_PY" "$KS_E2E/client.py" split "$VIP" 10 --max-failures 3)
	# shellcheck disable=SC2034 # read by the check's eval
	conns=$(ks_ctl conns web 2>&1)
	diag "client ns in the cgroup: $res"
	check "a process of another namespace in the cgroup goes through the packet path (10 of 10, flows from 198.18.1.2 in kshiftctl conns)" \
		eval 'jq_ok "$res" "d[\"ok\"] == 10" && grep -q 198.18.1.2 <<<"$conns"'

	# a removed endpoint's node-local connections are closed at once; a
	# draining one's and the others' stay
	node_client keepalive "$VIP" 16 --ready-file "$KS_TMP/ka.ready" \
		--go-file "$KS_TMP/ka.go" --wait-max 30 >"$KS_TMP/ka.out" 2>"$KS_TMP/ka.err" &
	ka=$!
	KS_BG_PIDS+=("$ka")
	if ks_wait_file "$KS_TMP/ka.ready" 20; then
		diag "keep-alive connections: $(cat "$KS_TMP/ka.ready")"
		out=$(ks_ctl apply -f "$KS_TMP/web-removed.yaml" 2>&1) || diag "$out"
		ks_until 10 0.2 grep -q "closed [0-9]* node-local socket" "$KS_LOG"
		diag "$(grep "node-local socket" "$KS_LOG")"
	fi
	touch "$KS_TMP/ka.go"
	wait "$ka"
	res=$(cat "$KS_TMP/ka.out")
	diag "keep-alive: $res"
	check "removed endpoint: its node-local keep-alive connections are closed ($(jq_py "$res" '[(r["first"], r["error"]) for r in d["conns"] if "198.18.2.3" in (r["first"] or "")]'))" \
		jq_ok "$res" 'all(r["error"] for r in d["conns"] if "198.18.2.3" in (r["first"] or "")) and any("198.18.2.3" in (r["first"] or "") for r in d["conns"])'
	check "the other endpoints' node-local connections, a draining one's too, carry on ($(jq_py "$res" '[(r["first"], r["error"]) for r in d["conns"] if "198.18.2.3" not in (r["first"] or "")]'))" \
		jq_ok "$res" 'all(r["count"] == 2 and not r["error"] for r in d["conns"] if "198.18.2.3" not in (r["first"] or "")) and any("198.18.3.2" in (r["first"] or "") for r in d["conns"])'

	# the hooks outlive kshiftd and are adopted
	# shellcheck disable=SC2034 # read by the check's eval
	ids0=$(link_ids) progs0=$(hook_progs)
	ks_daemon_stop
	res=$(node_client split "$VIP" 10 --max-failures 3)
	check "kshiftd stopped: node-local clients still steered (10 of 10: $(jq_py "$res" 'd["backends"]'))" \
		jq_ok "$res" 'd["ok"] == 10'
	# with only the DaemonSet's capabilities (manifests/daemonset.yaml), as
	# the container runtime bounds them
	real_kshiftd=$KSHIFTD
	if command -v setpriv >/dev/null; then
		KSHIFTD=$KS_TMP/kshiftd-caps
		printf '#!/bin/sh\nexec setpriv --bounding-set=-all,%s --inh-caps=-all,%s %q "$@"\n' \
			"$NL_CAPS" "$NL_CAPS" "$real_kshiftd" >"$KSHIFTD"
		chmod +x "$KSHIFTD"
	fi
	ks_daemon_start --cgroup "$NL_CG"
	rc=$?
	KSHIFTD=$real_kshiftd
	((rc == 0)) || break
	n=$(hooks | wc -l) ids1=$(link_ids)
	check "restarted: the hooks adopted, still 8 on the cgroup ($n), the same links moved to the new programs ($ids1)" \
		eval '[ "$n" = 8 ] && [ -n "$ids0" ] && [ "$ids0" = "$ids1" ] && [ "$(hook_progs)" != "$progs0" ]'
	p=$(peername 198.18.100.1 80)
	res=$(node_client split "$VIP" 20 --max-failures 3)
	check "restarted: node-local TCP 20 of 20 on both backends ($(jq_py "$res" 'd["backends"]')), getpeername $p" \
		eval 'jq_ok "$res" "d[\"ok\"] == 20 and len(d[\"backends\"]) == 2" && [ "$p" = "198.18.100.1 80" ]'

	# started without --cgroup: no socket hooks
	ks_daemon_stop
	ks_daemon_start || break
	n=$(hooks | wc -l)
	res=$(node_client connect 198.18.100.1 80 --timeout 2)
	check "kshiftd without --cgroup: the hooks detached ($n), node-local clients no longer steered ($(jq_py "$res" 'd["outcomes"]'))" \
		eval '[ "$n" = 0 ] && jq_ok "$res" "\"connected\" not in d[\"outcomes\"]"'
	ks_daemon_stop
	out=$(ip netns exec "$KS_NODE" "$KSHIFTD" --uninstall --pin-path "$KS_PIN" 2>&1)
	diag "$out"
	n=$(hooks | wc -l)
	check "kshiftd --uninstall: no hook left on the cgroup ($n), no pin left" \
		eval '[ "$n" = 0 ] && [ ! -e "$KS_PIN" ]'
	break
done
((KS_FAILS > 0)) && ks_diag
nl_cg_down
ks_teardown
check "the test's cgroup and cgroup2 mount are gone" eval '! ls -d /tmp/kse-nodelocal-$$-cg-* 2>/dev/null'
ks_done
