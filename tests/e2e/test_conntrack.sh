#!/usr/bin/env bash
# End to end: a connection table that tells the truth, in tc and xdp mode.
#   - 2 MB go each way through the VIP on one connection, also with a hop
#     at MTU 1200 on the client's or the pod's side (path MTU discovery:
#     kshift answers a DF packet too big for its next hop itself; in xdp
#     mode, where the stack sees the flow as client <-> endpoint, the stack
#     does, bpf/lib/fwd.h)
#   - UDP replies of 3,000 bytes, fragmented by the pod, reach the client
#     through the VIP (fragments follow their first fragment)
#   - a UDP client with a fixed source port moves to another endpoint within
#     1 s of its endpoint's removal (the flows of removed endpoints are
#     flushed)
#   - a client port just used through the frontend, used again straight to
#     the pod, works (10 of 10)
#   - kshiftctl conns lists open connections with their state; --flush
#     forgets them (as conntrack -F), and with the weights unchanged each
#     connection's next packet finds the endpoint it had
#   - a SYN flood of twice the table's size from spoofed sources: 100
#     long-lived connections keep working on their backend, also after a
#     change of weights, and new connections work once the flood stops
#   - kshiftd killed and started with a larger --max-flows copies the flows
#     into the new table: open connections keep their endpoint
set -uo pipefail
source "$(dirname "$0")/lib.sh"
ks_init conntrack

FLOWS=4096 # --max-flows: a flood of twice that is quick to send

# server.py: on each endpoint, TCP 9000 sends 2 MB to whoever connects and
# reads 2 MB back ("ok" when all arrived); UDP 5353 answers every datagram
# with 3,000 bytes of its name
server_py() {
	cat <<'PY'
import socket, sys, threading
name, addr = sys.argv[1], sys.argv[2]
def tcp():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 9000)); s.listen(64)
    while True:
        c, _ = s.accept()
        def serve(c):
            try:
                c.settimeout(20)
                c.sendall(b"x" * 2000000)
                got = 0
                while got < 2000000:
                    b = c.recv(65536)
                    if not b: break
                    got += len(b)
                c.sendall(b"ok" if got == 2000000 else b"short")
            except OSError:
                pass
            c.close()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
def udp():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((addr, 5353))
    while True:
        d, peer = u.recvfrom(2048)
        u.sendto((name.encode() + b" " * 3000)[:3000], peer)
threading.Thread(target=tcp, daemon=True).start()
udp()
PY
}

# bulk HOST: 2 MB down then 2 MB up on one connection through HOST:80
bulk() {
	in_ns "$KS_CLIENT" "$KS_PY" -c '
import socket, sys
s = socket.create_connection((sys.argv[1], 80), timeout=15)
got = 0
while got < 2000000:
    b = s.recv(65536)
    if not b: break
    got += len(b)
s.sendall(b"y" * 2000000)
s.shutdown(socket.SHUT_WR)
end = s.recv(16)
print("down=%d up=%s" % (got, end.decode(errors="replace")))' "$1" 2>&1
}

# udp_big: 20 questions to 198.18.100.2:53; prints how many 3,000-byte
# answers came back
udp_big() {
	in_ns "$KS_CLIENT" "$KS_PY" -c '
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)
u.connect(("198.18.100.2", 53)); n = 0
for i in range(20):
    try:
        u.send(b"q"); n += len(u.recv(8192)) == 3000
    except OSError: pass
print(n)' 2>&1
}

# too_big: the dataplane's reply_too_big counter
too_big() {
	ks_ctl verdicts -o json 2>/dev/null | tr -d ' \n' | grep -o '"reply_too_big":[0-9]*' |
		grep -o '[0-9]*$'
}

manifest() {
	local eps=$1
	cat >"$KS_CONF/ct.yaml.tmp" <<EOF
apiVersion: kshift.dev/v1alpha1
kind: TrafficShift
metadata: {name: bulk}
spec:
  frontend:
    addresses: ["198.18.100.1", "198.18.100.4"]
    ports: [{port: 80, protocol: TCP}]
  backends:
  - {name: stable, endpoints: ["198.18.2.2:9000"], weight: 1}
---
apiVersion: kshift.dev/v1alpha1
kind: TrafficShift
metadata: {name: dns}
spec:
  frontend:
    addresses: ["198.18.100.2"]
    ports: [{port: 53, protocol: UDP}]
  backends:
  - {name: stable, endpoints: [$eps], weight: 1}
---
apiVersion: kshift.dev/v1alpha1
kind: TrafficShift
metadata: {name: web}
spec:
  frontend:
    addresses: ["198.18.100.3"]
    ports: [{port: 80, protocol: TCP}]
  backends:
  - {name: stable, endpoints: ["198.18.2.2:8080", "198.18.2.3:8080"], weight: 50}
  - {name: canary, endpoints: ["198.18.3.2:8080"], weight: 50}
EOF
	mv "$KS_CONF/ct.yaml.tmp" "$KS_CONF/ct.yaml"
}

# udp_follow OUT SECONDS: one UDP socket (one source port) asks
# 198.18.100.2:53 every 50 ms; OUT gets "TIME NAME" per answer
udp_follow() {
	ip netns exec "$KS_CLIENT" "$KS_PY" -c '
import socket, sys, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(0.2)
u.connect(("198.18.100.2", 53))
end = time.time() + float(sys.argv[2])
with open(sys.argv[1], "w") as f:
    while time.time() < end:
        try:
            u.send(b"q")
            d = u.recv(4096)
            f.write("%.3f %s\n" % (time.time(), d.split()[0].decode())); f.flush()
        except OSError as e:
            f.write("%.3f error\n" % time.time()); f.flush()
        time.sleep(0.05)' "$1" "$2" &
	KS_LAST_PID=$!
	KS_BG_PIDS+=($!)
}

# held NAME N: N keep-alive connections to 198.18.100.3 opened, then held
# until held_end NAME, which lets them make their next requests and puts
# the client's report in $res (not in a subshell: it waits for the client);
# kept REPORT: its kept, changed and errors
held() {
	ks_client_bg "$KS_TMP/$1.json" keepalive http://198.18.100.3/ "$2" \
		--ready-file "$KS_TMP/$1.ready" --go-file "$KS_TMP/$1.go"
	HELD_PID=$KS_LAST_PID
	ks_wait_file "$KS_TMP/$1.ready" 20
}
held_end() {
	touch "$KS_TMP/$1.go"
	wait "$HELD_PID"
	res=$(<"$KS_TMP/$1.json")
}
kept() {
	jq_py "$1" "{k: d[k] for k in ('kept', 'changed', 'errors')}"
}

# flood N: N SYNs to 198.18.100.3:80 from spoofed sources in 198.18.1.0/24
flood() {
	in_ns "$KS_CLIENT" "$KS_PY" -c '
import random, socket, struct, sys
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
dst = socket.inet_aton("198.18.100.3")
rnd = random.Random(7)
for i in range(int(sys.argv[1])):
    src = socket.inet_aton("198.18.1.%d" % rnd.randint(20, 250))
    sport = rnd.randint(1024, 65535)
    tcp = struct.pack("!HHIIBBHHH", sport, 80, rnd.getrandbits(32), 0, 5 << 4, 0x02, 64240, 0, 0)
    c = csum(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xffff, 0, 64, 6, 0, src, dst)
    r.sendto(ip + tcp, ("198.18.100.3", 0))
print(sys.argv[1])' "$1" 2>&1
}

for mode in $(ks_modes); do
	ks_setup "$mode" stable:198.18.2.2 stable:198.18.2.3 canary:198.18.3.2 &&
		ks_httpd_all 8080 || { ks_mode_end; continue; }
	for i in 0 1; do
		ip netns exec "$KS_PFX-ep$i" "$KS_PY" -c "$(server_py)" "stable$i" \
			"${KS_EP_ADDRS[i]}" </dev/null >>"$KS_TMP/server$i.log" 2>&1 &
		KS_BG_PIDS+=($!)
	done
	manifest '"198.18.2.2:5353", "198.18.2.3:5353"'
	ks_daemon_start --max-flows "$FLOWS" || { ks_mode_end; continue; }
	ks_until 5 0.1 ks_weights_are web "stable=50 canary=50" ||
		{ not_ok "the manifests are applied"; ks_mode_end; continue; }

	t0=$(ks_now)
	res=$(bulk 198.18.100.1)
	check "2 MB each way through the VIP ($res)" [ "$res" = "down=2000000 up=ok" ]
	diag "2 MB each way at MTU 1500 in $(awk -v t0="$t0" -v t1="$(ks_now)" 'BEGIN { printf "%.2f", t1 - t0 }') s"

	# path MTU discovery through the VIP: a hop of 1200 bytes on the
	# client's side makes the pod's replies too big, one on the pod's side
	# the client's upload; kshift answers the sender of a DF packet too
	# big itself. The hop is the node's route to the client or the pod at
	# MTU 1200 (locked), not the veth's: a veth at 1200 drops what its peer
	# at 1500 sends before any hook sees it, and with both ends at 1200
	# the MSS would say it all. The pod's UDP replies, fragments without
	# DF, are fragmented again by the stack. A sender keeps what it
	# learnt for 10 minutes, and its MSS then says it: the pod's side goes
	# first, the client learning the MTU of 198.18.100.1; the client's
	# side then goes through 198.18.100.4, the same shift.
	for hop in ep0 cli0; do
		vip=198.18.100.1
		[[ $hop == cli0 ]] && vip=198.18.100.4
		if [[ $hop == cli0 ]]; then
			ip -n "$KS_NODE" route add 198.18.1.2/32 dev cli0 mtu lock 1200
		else
			ip -n "$KS_NODE" route change 198.18.2.2/32 dev ep0 mtu lock 1200
		fi
		before=$(too_big)
		res=$(bulk $vip)
		check "2 MB each way through $vip with a hop at MTU 1200 on $hop's side ($res)" \
			[ "$res" = "down=2000000 up=ok" ]
		after=$(too_big)
		# XDP passing up leaves the answer to the stack (bpf/lib/fwd.h)
		[[ $KS_MODE == xdp ]] ||
			check "... kshift answered with fragmentation needed (reply_too_big ${before:-?} -> ${after:-?})" \
				[ "${after:-0}" -gt "${before:-0}" ]
		res=$(udp_big)
		check "UDP replies of 3,000 bytes with a hop at MTU 1200 on $hop's side: $res of 20" \
			[ "$res" = 20 ]
		if [[ $hop == cli0 ]]; then
			ip -n "$KS_NODE" route del 198.18.1.2/32 dev cli0
		else
			ip -n "$KS_NODE" route change 198.18.2.2/32 dev ep0
		fi
	done

	# fragmented UDP replies
	res=$(udp_big)
	check "UDP replies of 3,000 bytes (fragmented by the pod) reach the client: $res of 20" \
		[ "$res" = 20 ]

	# a fixed source port moves on when its endpoint goes
	udp_follow "$KS_TMP/follow" 6
	follow_pid=$KS_LAST_PID
	sleep 1.5
	first=$(awk 'END { print $2 }' "$KS_TMP/follow")
	if [[ $first == stable0 ]]; then gone=198.18.2.2 keep='"198.18.2.3:5353"'; else
		gone=198.18.2.3 keep='"198.18.2.2:5353"'; fi
	t0=$(ks_now)
	manifest "$keep"
	wait "$follow_pid"
	moved=$(awk -v t0="$t0" -v first="$first" '$1 > t0 && $2 != first && $2 != "error" {
		print $1 - t0; exit }' "$KS_TMP/follow")
	after=$(awk -v t0="$t0" -v first="$first" '$1 > t0 + 1.5 && $2 == first' "$KS_TMP/follow" | wc -l)
	check "a UDP client with a fixed port leaves removed $gone for the other endpoint (after ${moved:-never} s, incl. the 0.2 s reload delay)" \
		"$KS_PY" -c "import sys; sys.exit(not ('$moved' and float('$moved') < 1.0))"
	check "... and never reaches it again ($after answers from it later)" [ "$after" = 0 ]

	# a port of a connection through the frontend, used again straight to
	# its pod: the pod's SYN-ACK shows the old flow is over, and the rest
	# of the new connection passes untouched (it was rewritten to come
	# from the frontend, and failed)
	res=$(in_ns "$KS_CLIENT" "$KS_PY" - "$KS_E2E" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import client
ok = 0
for port in range(21000, 21010):
    body, err = client.get_once("198.18.100.3", 80, "/", lport=port)
    if not body:
        continue
    addr = body.split()[1]
    body2, err2 = client.get_once(addr, 8080, "/", lport=port)
    ok += body2 == body
print(ok)
PY
)
	check "10 connections from a port just used through the frontend, straight to its pod: $res work" \
		[ "$res" = 10 ]

	# conns --flush: the flows go from the table, the connections stay
	held fl 20
	out=$(ks_ctl conns web --flush)
	flushed=$([[ $out =~ ^flushed\ ([0-9]+)\ flow ]] && echo "${BASH_REMATCH[1]}")
	check "kshiftctl conns web --flush: '$out' (the 20 open connections among them)" \
		between 20 "${flushed:-0}" 100000
	n=$(jq_py "$(ks_ctl conns web -o json)" "d['total']")
	check "... and conns lists none of them after ($n flows)" between 0 "$n" 0
	held_end fl
	check "the 20 connections keep working on their endpoint after the flush ($(kept "$res"))" \
		jq_ok "$res" "d['kept'] == 20"

	# a SYN flood of twice the table's size
	held ka 100
	n=$(jq_py "$(ks_ctl conns web -o json)" \
		"sum(1 for f in d['items'] if f['state'] == 'established' and f['client'].startswith('198.18.1.2:'))")
	check "kshiftctl conns lists the 100 open connections, established ($n)" between 100 "$n" 100
	sent=$(flood $((2 * FLOWS)))
	ks_ctl set web stable=0 canary=100 >/dev/null
	held_end ka
	check "flood of $sent SYNs: 100 long-lived connections keep working on their backend ($(kept "$res"))" \
		jq_ok "$res" "d['kept'] == 100"
	verdicts=$(ks_ctl verdicts -o json 2>/dev/null || ks_ctl verdicts 2>/dev/null)
	diag "verdicts after the flood: $(echo "$verdicts" | tr -d ' \n' | head -c 600)"
	check "new connections work once the half-open flows are collected" \
		ks_until 20 1 bash -c "ip netns exec $KS_CLIENT $KS_PY $KS_E2E/client.py split http://198.18.100.3/ 5 | grep -q '\"ok\": 5'"

	# kshiftd killed and started with a table twice the size: the flows
	# are copied into it, so the connections keep their endpoint even
	# though the weights then send new flows to the other backend
	held rs 20
	kill -KILL "$KS_DAEMON_PID"
	wait "$KS_DAEMON_PID" 2>/dev/null
	KS_DAEMON_PID=
	lines=$(wc -l <"$KS_LOG")
	if ks_daemon_start --max-flows $((2 * FLOWS)); then
		copied=$(tail -n +$((lines + 1)) "$KS_LOG" | grep -o "ks_conns: [0-9]* entries copied, [0-9]* dropped")
		check "kill -9, then --max-flows $((2 * FLOWS)): '${copied:-no copy logged}' (the 40 entries of the 20 open connections among them)" \
			eval '[[ $copied =~ ^ks_conns:\ ([0-9]+)\ entries\ copied,\ 0\ dropped$ ]] && ((BASH_REMATCH[1] >= 40))'
		ks_ctl set web stable=100 canary=0 >/dev/null
	fi
	held_end rs
	check "... and the 20 connections keep their endpoint after the weights moved ($(kept "$res"))" \
		jq_ok "$res" "d['kept'] == 20"
	ks_mode_end
done
ks_done
