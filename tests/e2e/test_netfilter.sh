#!/usr/bin/env bash
# End to end: kshift beside netfilter as kube-proxy leaves it (issue #9), in
# tc and xdp mode. On the node: conntrack's INVALID DROP in FORWARD (IPv4
# and IPv6) and rp_filter=1, with no route covering the frontends.
#   - 50 connections through the frontend, IPv4 and IPv6, and 2 MB transfers
#     both ways (GSO packets among them): all work
#   - UDP answers of 3,000 bytes, fragmented by the pods, IPv4 and IPv6
#   - 2 MB transfers with a hop at MTU 1200 (IPv6 1280) on the pods' side, then
#     the client's: path MTU discovery works through the frontend
#   - what the FORWARD chain sees of steered flows, as documented
#     (docs/kubernetes.md, "Beside kube-proxy"): in tc mode nothing, for
#     every packet of the flow (forwarded past the stack); in xdp mode,
#     where XDP passes packets up a veth's stack, every packet, as client
#     <-> endpoint both ways (destinations rewritten at XDP ingress,
#     sources by the tcx egress program, whose links are pinned)
#   - the egress programs stay attached while kshiftd is stopped (traffic
#     flows), a new kshiftd takes them over, --uninstall removes them
#   - a FORWARD REJECT (tcp-reset) for one endpoint: direct connections to
#     it are refused in both modes; through the frontend, in tc mode it
#     still serves (a 2 MB transfer too), in xdp mode the flows steered to
#     it are refused and the other endpoint serves the rest; with REJECT's
#     ICMP unreachable instead, passive health moves them to the other
set -uo pipefail
source "$(dirname "$0")/lib.sh"
ks_init netfilter

EP_A=198.18.2.2
EP_B=198.18.2.3
URL4=http://198.18.100.1:80/
URL6=http://[2001:2:0:100::1]:80/
BULK=198.18.100.2
BULK6=2001:2:0:100::2
BULK_PORT=9000
SIZE=$((2 * 1024 * 1024))

write_manifest() {
	cat >"$1" <<'YAML'
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
---
apiVersion: kshift.dev/v1alpha1
kind: TrafficShift
metadata:
  name: bulk
spec:
  frontend:
    addresses: ["198.18.100.2", "2001:2:0:100::2"]
    ports:
    - {port: 9000, protocol: TCP}
  backends:
  - name: stable
    endpoints: ["198.18.2.2:9000", "198.18.2.3:9000", "[2001:2:0:2::2]:9000", "[2001:2:0:2::3]:9000"]
    weight: 100
---
apiVersion: kshift.dev/v1alpha1
kind: TrafficShift
metadata:
  name: dns
spec:
  frontend:
    addresses: ["198.18.100.3", "2001:2:0:100::3"]
    ports:
    - {port: 53, protocol: UDP}
  backends:
  - name: stable
    endpoints: ["198.18.2.2:5353", "198.18.2.3:5353", "[2001:2:0:2::2]:5353", "[2001:2:0:2::3]:5353"]
    weight: 100
YAML
}

# an echo server on both families, one thread a connection
ECHO_PY='
import socket, threading
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 9000))
s.listen(64)
def serve(c):
    with c:
        while True:
            b = c.recv(262144)
            if not b:
                return
            c.sendall(b)
def udp():
    u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    u.bind(("::", 5353))
    while True:
        b, peer = u.recvfrom(2048)
        u.sendto(b"x" * 3000, peer)
threading.Thread(target=udp, daemon=True).start()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
'
# HOST: 20 questions to HOST:53; how many 3,000-byte answers (fragmented
# by the pod) came back
UDP_PY='
import socket, sys
u = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(2)
u.connect((sys.argv[1], 53))
n = 0
for i in range(20):
    try:
        u.send(b"q")
        n += len(u.recv(8192)) == 3000
    except OSError:
        pass
print(n)
'
# HOST PORT SIZE: sends SIZE random bytes, reads them back; "ok" or why not
BULK_PY='
import os, socket, sys, threading
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = os.urandom(n)
try:
    c = socket.create_connection((host, port), timeout=10)
    def send():
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
    t = threading.Thread(target=send)
    t.start()
    got = bytearray()
    while len(got) < n:
        b = c.recv(262144)
        if not b:
            break
        got += b
    t.join()
    print("ok" if bytes(got) == data else "got %d bytes of %d, %s" % (len(got), n,
          "equal so far" if data.startswith(bytes(got)) else "different"))
except Exception as e:
    print("error: %r" % e)
'

# bulk HOST: one 2 MB echo through HOST:9000 from the client
bulk() {
	in_ns "$KS_CLIENT" "$KS_PY" -c "$BULK_PY" "$1" "$BULK_PORT" "$SIZE"
}

echo_servers() {
	local i
	for ((i = 0; i < ${#KS_EP_ADDRS[@]}; i++)); do
		ip netns exec "$KS_PFX-ep$i" "$KS_PY" -c "$ECHO_PY" >>"$KS_TMP/echo$i.log" 2>&1 &
		KS_BG_PIDS+=($!)
	done
	for ((i = 0; i < ${#KS_EP_ADDRS[@]}; i++)); do
		ks_until 10 0.1 eval "in_ns $KS_PFX-ep$i ss -Hltn 'sport = :9000' | grep -q ." ||
			return
	done
}

# netfilter as kube-proxy leaves it, and two rules that only count what
# FORWARD sees of EP_B's flows
node_netfilter() {
	local t
	for t in iptables ip6tables; do
		in_ns "$KS_NODE" "$t" -A FORWARD -m conntrack --ctstate INVALID -j DROP || return
	done
	in_ns "$KS_NODE" iptables -A FORWARD -d "$EP_B" -p tcp -m comment --comment ks_to_b &&
		in_ns "$KS_NODE" iptables -A FORWARD -s "$EP_B" -p tcp -m comment --comment ks_from_b ||
		return
	in_ns "$KS_NODE" sysctl -qw net.ipv4.conf.all.rp_filter=1 \
		net.ipv4.conf.default.rp_filter=1 || return
	for t in $(ks_ifaces | tr , ' '); do
		in_ns "$KS_NODE" sysctl -qw "net.ipv4.conf.$t.rp_filter=1" || return
	done
}

# counted COMMENT: packets the rule with that comment counted
counted() {
	in_ns "$KS_NODE" iptables -v -S FORWARD | sed -n "s/.*--comment $1 -c \([0-9]*\) .*/\1/p"
}

invalid_drops() {
	local t
	for t in iptables ip6tables; do
		in_ns "$KS_NODE" "$t" -v -S FORWARD | sed -n 's/.*INVALID -c \([0-9]*\) .*/\1/p'
	done | paste -sd+ | sed 's/^$/0/' | { read -r sum; echo $((sum)); }
}

# egress_hooks: "dev id" of every tcx egress program on the node's veths
egress_hooks() {
	in_ns "$KS_NODE" "$KS_PY" -c '
import ctypes, platform, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
NR_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine(), 321)
BPF_PROG_QUERY, BPF_TCX_EGRESS = 16, 47
for dev in sys.argv[1:]:
    ids = (ctypes.c_uint32 * 64)()
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("IIIIQI", attr, 0, socket.if_nametoindex(dev), BPF_TCX_EGRESS, 0, 0,
                     ctypes.addressof(ids), 64)
    if libc.syscall(ctypes.c_long(NR_BPF), ctypes.c_long(BPF_PROG_QUERY), attr,
                    ctypes.c_long(128)) == 0:
        for i in range(struct.unpack_from("I", attr, 24)[0]):
            print(dev, ids[i])' $(ks_ifaces | tr , ' ')
}

# split URL N MAXFAIL: N connections from the client, JSON out
split() {
	ks_client split "$1" "$2" --max-failures "${3:-2}"
}

for mode in $(ks_modes); do
	ks_setup "$mode" stable:$EP_A stable:$EP_B && ks_httpd_all 8080 || { ks_mode_end; continue; }
	if ! echo_servers; then
		not_ok "setup: echo servers on port $BULK_PORT"
		ks_mode_end
		continue
	fi
	check "netfilter on the node: conntrack INVALID DROP in FORWARD, rp_filter=1" node_netfilter
	ks_daemon_start || { ks_mode_end; continue; }
	write_manifest "$KS_TMP/shifts.yaml"
	if ! out=$(ks_ctl apply -f "$KS_TMP/shifts.yaml" 2>&1); then
		not_ok "kshiftctl apply -f shifts.yaml"
		diag "$out"
		ks_mode_end
		continue
	fi
	ok "kshiftctl apply -f shifts.yaml"
	ks_probe "$URL4" || { ks_mode_end; continue; }

	egress=$(ls "$KS_PIN/links" 2>/dev/null | grep -c ':egress$')
	if [[ $mode == xdp* ]]; then
		check "xdp: a tcx egress link pinned beside each XDP link ($egress of 3)" [ "$egress" = 3 ]
	else
		check "tc: no egress link ($egress)" [ "$egress" = 0 ]
	fi

	for url in "$URL4" "$URL6"; do
		res=$(split "$url" 50 50)
		diag "$url: $res"
		check "50 connections through $url, none failed" jq_ok "$res" \
			'd["failures"] == 0 and d["ok"] == 50 and len(d["endpoints"]) == 2'
	done
	for host in $BULK $BULK $BULK $BULK $BULK6 $BULK6; do
		res=$(bulk "$host")
		check "2 MB echoed through $host:$BULK_PORT ($res)" [ "$res" = ok ]
	done

	for host in 198.18.100.3 2001:2:0:100::3; do
		res=$(in_ns "$KS_CLIENT" "$KS_PY" -c "$UDP_PY" "$host")
		check "UDP answers of 3,000 bytes (fragments) from $host:53: $res of 20" [ "$res" = 20 ]
	done

	to_b=$(counted ks_to_b)
	from_b=$(counted ks_from_b)
	diag "FORWARD counted $to_b packets to $EP_B, $from_b from it; INVALID dropped $(invalid_drops)"
	if [[ $mode == tc ]]; then
		check "tc: FORWARD saw no packet of the steered flows ($to_b to, $from_b from $EP_B)" \
			[ "$to_b" = 0 -a "$from_b" = 0 ]
	else
		# at least the 25-odd connections of each split and the
		# transfers' 2 MB in MSS-sized or GSO packets, both ways
		check "xdp: FORWARD saw the steered flows both ways, as client <-> endpoint" \
			eval '((to_b > 30 && from_b > 30))'
	fi

	# path MTU discovery under rp_filter=1: a hop at MTU 1200 (IPv6 1280)
	# on the pods' side, then on the client's; kshift answers the sender
	# in tc mode, the stack in xdp mode (bpf/lib/fwd.h), whose error to
	# the client leaves as about the frontend (bpf/lib/egress.h)
	for hop in pods cli0; do
		if [[ $hop == pods ]]; then
			pmtu() {
				ip -n "$KS_NODE" route change "$EP_A/32" dev ep0 "$@" &&
					ip -n "$KS_NODE" route change "$EP_B/32" dev ep1 "$@" &&
					ip -n "$KS_NODE" -6 route change 2001:2:0:2::2/128 dev ep0 ${1:+mtu lock 1280} &&
					ip -n "$KS_NODE" -6 route change 2001:2:0:2::3/128 dev ep1 ${1:+mtu lock 1280}
			}
			pmtu mtu lock 1200
		else
			pmtu() {
				ip -n "$KS_NODE" route "${1:-del}" 198.18.1.2/32 dev cli0 mtu lock 1200 &&
					ip -n "$KS_NODE" -6 route "${1:-del}" 2001:2:0:1::2/128 dev cli0 mtu lock 1280
			}
			pmtu add
		fi
		for host in $BULK $BULK6; do
			res=$(bulk "$host")
			check "2 MB echoed through $host:$BULK_PORT with a hop at MTU 1200 (IPv6 1280) on the $hop side ($res)" \
				[ "$res" = ok ]
		done
		pmtu
	done
	# who answered: kshift (its verdict counter) or the node's stack
	too_big=$(ks_ctl verdicts -o json 2>/dev/null | tr -d ' \n' |
		grep -o '"reply_too_big":[0-9]*' | grep -o '[0-9]*$')
	stack=$(in_ns "$KS_NODE" nstat -asz IcmpOutDestUnreachs Icmp6OutPktTooBigs |
		awk '/^Icmp/ { n += $2 } END { print n + 0 }')
	if [[ $mode == tc ]]; then
		check "tc: kshift answered the packets too big (reply_too_big $too_big)" \
			[ "${too_big:-0}" -gt 0 ]
	else
		check "xdp: the node's stack answered the packets too big ($stack ICMP errors)" \
			[ "$stack" -gt 0 ]
	fi

	# the egress programs outlive kshiftd, as its XDP links do, and the
	# next kshiftd takes them over (one per interface, never two)
	want=0
	[[ $mode == xdp* ]] && want=3
	ks_daemon_stop
	before=$(egress_hooks)
	n=$(egress_hooks | wc -l)
	res=$(split "$URL4" 20 20)
	check "kshiftd stopped: 20 connections through the frontend work, $n of $want egress programs attached" \
		eval 'jq_ok "$res" "d[\"failures\"] == 0" && [ "$n" = $want ]'
	if ks_daemon_start; then
		n=$(egress_hooks | wc -l)
		res=$(split "$URL4" 20 20)
		check "kshiftd started again: 20 connections through the frontend work, $n of $want egress programs attached" \
			eval 'jq_ok "$res" "d[\"failures\"] == 0" && [ "$n" = $want ]'
		# moved to the new load's program, link by link (bpf_link_update)
		[[ $mode == xdp* ]] &&
			check "... each running the new kshiftd's program, not the old one's" \
				eval '! comm -12 <(echo "$before" | sort) <(egress_hooks | sort) | grep -q .'
	fi

	# a REJECT for EP_B, first in FORWARD
	in_ns "$KS_NODE" iptables -I FORWARD 1 -d "$EP_B" -p tcp -j REJECT --reject-with tcp-reset &&
		in_ns "$KS_NODE" ip6tables -I FORWARD 1 -d 2001:2:0:2::3 -p tcp -j REJECT \
			--reject-with tcp-reset
	check "FORWARD REJECT (tcp-reset) for $EP_B and 2001:2:0:2::3" [ $? = 0 ]
	direct_b=$(in_ns "$KS_CLIENT" curl -s -m 5 -o /dev/null -w '%{http_code}' "http://$EP_B:8080/")
	direct_a=$(in_ns "$KS_CLIENT" curl -sS -m 5 "http://$EP_A:8080/" 2>&1)
	check "a direct connection to $EP_B is refused (HTTP code $direct_b)" [ "$direct_b" = 000 ]
	check "a direct connection to $EP_A works ($direct_a)" [ "$direct_a" = "stable $EP_A" ]
	for url in "$URL4" "$URL6"; do
		res=$(split "$url" 40 40)
		diag "$url with the REJECT: $res"
		if [[ $mode == tc ]]; then
			check "tc: 40 connections through $url all work, both endpoints serve" \
				jq_ok "$res" 'd["failures"] == 0 and len(d["endpoints"]) == 2'
		else
			check "xdp: through $url the flows steered to the rejected endpoint are refused, the rest work" \
				jq_ok "$res" 'd["ok"] + d["failures"] == 40 and 0 < d["failures"] < 40 and all(k.endswith((".2", "::2")) for k in d["endpoints"])'
		fi
	done
	if [[ $mode == tc ]]; then
		good=0
		for i in 1 2 3 4 5 6; do
			[[ $(bulk $BULK) == ok ]] && good=$((good + 1))
		done
		check "tc: 6 transfers of 2 MB through $BULK:$BULK_PORT with the REJECT in place, all work ($good)" \
			[ "$good" = 6 ]
	fi
	# REJECT's default answer, an ICMP port unreachable: in xdp mode the
	# stack's error about a steered SYN is what an endpoint refusing the
	# handshake sends, and passive health (bpf/lib/health.h) holds it back,
	# quarantines the endpoint and moves the client's next SYN elsewhere
	in_ns "$KS_NODE" iptables -R FORWARD 1 -d "$EP_B" -p tcp -j REJECT
	res=$(split "$URL4" 40 40)
	diag "$URL4 with an ICMP REJECT: $res"
	check "REJECT (icmp-port-unreachable) for $EP_B: 40 connections through $URL4 all work (${mode}: $(
		[[ $mode == tc ]] && echo "past FORWARD" || echo "moved off by passive health"))" \
		jq_ok "$res" 'd["failures"] == 0'
	# --uninstall takes the egress programs away too
	ks_daemon_stop
	ip netns exec "$KS_NODE" "$KSHIFTD" --uninstall --pin-path "$KS_PIN" >/dev/null 2>&1
	n=$(egress_hooks | wc -l)
	check "kshiftd --uninstall leaves no tcx egress program ($n)" [ "$n" = 0 ]
	ks_mode_end
done
ks_done
