#!/usr/bin/env bash
# End to end: IPv6, UDP and frontends without endpoints, in tc and xdp mode.
#   - HTTP through the IPv6 frontend [2001:2:0:100::1]:80 reaches stable and canary
#   - UDP through an IPv4 and an IPv6 frontend: every datagram is answered,
#     and the answers come from the frontend address and port (the client
#     never sees a backend address: checked with recvfrom on an unconnected
#     socket, and with a connected socket, which drops anything else)
#   - a frontend with no endpoints answers at once: TCP with a reset
#     (ECONNREFUSED well under 1 s), UDP with an ICMP port unreachable
#     (ECONNREFUSED on a connected socket); it never blackholes
#   - packets with partial checksums (CHECKSUM_PARTIAL, what a pod's veth
#     sends with checksum offload on) come out of the node with valid
#     checksums, IPv4 and IPv6, TCP and UDP, and so does a reset (lib.sh:
#     the node's veths complete checksums in software and receivers verify)
set -uo pipefail
source "$(dirname "$0")/lib.sh"
ks_init ipv6udp

# one shift a file, so that a refusal of one names its own failure
write_manifests() {
	cat >"$KS_TMP/web6.yaml" <<'EOF'
apiVersion: kshift.dev/v1alpha1
kind: TrafficShift
metadata:
  name: web6
spec:
  frontend:
    addresses: ["2001:2:0:100::1"]
    ports:
    - {port: 80, protocol: TCP}
  backends:
  - name: stable
    endpoints: ["[2001:2:0:2::2]:8080", "[2001:2:0:2::3]:8080"]
    weight: 90
  - name: canary
    endpoints: ["[2001:2:0:3::2]:8080"]
    weight: 10
EOF
	cat >"$KS_TMP/web4.yaml" <<'EOF'
apiVersion: kshift.dev/v1alpha1
kind: TrafficShift
metadata:
  name: web4
spec:
  frontend:
    addresses: ["198.18.100.1"]
    ports:
    - {port: 80, protocol: TCP}
  backends:
  - name: stable
    endpoints: ["198.18.2.2:8080", "198.18.2.3:8080"]
    weight: 1
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
    addresses: ["198.18.100.9", "2001:2:0:100::9"]
    ports:
    - {port: 80, protocol: TCP}
    - {port: 53, protocol: UDP}
  backends:
  - name: stable
    endpoints: []
    weight: 1
EOF
}

# udp_check FRONTEND PORT: datagrams from fresh sockets (so they spread over
# the endpoints), then from one connected socket
udp_check() {
	local fe=$1 port=$2 src res n
	src=$fe:$port
	[[ $fe == *:* ]] && src="[$fe]:$port"
	res=$(ks_client udp "$fe" "$port" --count 40 --new-socket-each)
	diag "udp $src: $res"
	check "UDP $src: 40 datagrams, 40 answers ($(jq_py "$res" 'd["replies"]'))" \
		[ "$(jq_py "$res" 'd["replies"]')" = 40 ]
	n=$(jq_py "$res" 'd["sources"].get("'"$src"'", 0)')
	check "UDP $src: every answer comes from $src (recvfrom: $(jq_py "$res" 'd["sources"]'))" \
		[ "$n" = 40 ]
	check "UDP $src: both endpoints answer ($(jq_py "$res" 'd["endpoints"]'))" \
		[ "$(jq_py "$res" 'len(d["endpoints"])')" = 2 ]
	res=$(ks_client udp "$fe" "$port" --count 10 --connected)
	diag "udp connected $src: $res"
	check "UDP $src: a connected socket gets all 10 answers" \
		[ "$(jq_py "$res" 'd["replies"]')" = 10 ]
}

# refused_check FRONTEND: the frontend without endpoints refuses at once
refused_check() {
	local fe=$1 res
	res=$(ks_client connect "$fe" 80 --count 3 --timeout 3)
	diag "tcp connect $fe: $res"
	check "TCP to $fe:80 (no endpoints): ECONNREFUSED 3 of 3 ($(jq_py "$res" 'd["outcomes"]'))" \
		[ "$(jq_py "$res" 'd["outcomes"].get("ECONNREFUSED", 0)')" = 3 ]
	check "TCP to $fe:80 (no endpoints): refused within 1 s ($(jq_py "$res" 'd["max_seconds"]') s)" \
		jq_ok "$res" 'd["max_seconds"] < 1.0'
	res=$(ks_client udp "$fe" 53 --count 3 --connected --new-socket-each --timeout 3)
	diag "udp connected $fe: $res"
	check "UDP to $fe:53 (no endpoints): ECONNREFUSED 3 of 3 ($(jq_py "$res" 'd["errors"]'))" \
		[ "$(jq_py "$res" 'd["errors"].get("ECONNREFUSED", 0)')" = 3 ]
	check "UDP to $fe:53 (no endpoints): refused within 1 s ($(jq_py "$res" 'd["max_seconds"]') s)" \
		jq_ok "$res" 'd["max_seconds"] < 1.0'
}

# csum_errors: checksum errors counted by the receivers (client, backends)
csum_errors() {
	local ns n total=0
	for ns in "$KS_CLIENT" "$KS_PFX"-ep{0,1,2}; do
		n=$(in_ns "$ns" nstat -az TcpInCsumErrors UdpInCsumErrors Udp6InCsumErrors |
			awk 'NR > 1 {s += $2} END {print s + 0}')
		total=$((total + n))
	done
	echo "$total"
}

# partial_check: the client and backends send with checksum offload on, as
# pods on a node do (a pod calling a VIP); every kind of flow, and the
# answers of a frontend without endpoints, must still arrive with a valid
# checksum once the node's veth completes it (see lib.sh). Few
# connections and short timeouts: when checksums are wrong nothing gets
# through and each try waits its timeout out.
partial_check() {
	local res before after
	ks_end_tx on || { not_ok "ethtool: checksum offload on at the client and backends"; return; }
	before=$(csum_errors)
	res=$(ks_client split "http://198.18.100.1:80/" 10 --max-failures 2)
	diag "partial csum, split v4: $res"
	check "partial checksums: 10 IPv4 TCP connections through 198.18.100.1:80" \
		jq_ok "$res" 'd["ok"] == 10'
	res=$(ks_client split "http://[2001:2:0:100::1]:80/" 10 --max-failures 2)
	diag "partial csum, split v6: $res"
	check "partial checksums: 10 IPv6 TCP connections through [2001:2:0:100::1]:80" \
		jq_ok "$res" 'd["ok"] == 10'
	res=$(ks_client udp 198.18.100.2 53 --count 3 --timeout 1)
	diag "partial csum, udp v4: $res"
	check "partial checksums: 3 IPv4 UDP datagrams answered through 198.18.100.2:53" \
		jq_ok "$res" 'd["replies"] == 3'
	res=$(ks_client udp 2001:2:0:100::2 53 --count 3 --timeout 1)
	diag "partial csum, udp v6: $res"
	check "partial checksums: 3 IPv6 UDP datagrams answered through [2001:2:0:100::2]:53" \
		jq_ok "$res" 'd["replies"] == 3'
	res=$(ks_client connect 198.18.100.9 80 --count 1 --timeout 1)
	diag "partial csum, reset: $res"
	check "partial checksums: a connect to 198.18.100.9:80 (no endpoints) gets its reset" \
		jq_ok "$res" 'd["outcomes"].get("ECONNREFUSED", 0) == 1'
	after=$(csum_errors)
	check "partial checksums: no receiver counted a checksum error ($((after - before)))" \
		[ "$after" = "$before" ]
}

for mode in $(ks_modes); do
	ks_setup "$mode" stable:198.18.2.2 stable:198.18.2.3 canary:198.18.3.2 &&
		ks_httpd_all 8080 5353 && ks_daemon_start || { ks_mode_end; continue; }

	write_manifests
	for m in web4 web6 dns dns6 empty; do
		if out=$(ks_ctl apply -f "$KS_TMP/$m.yaml" 2>&1); then
			ok "kshiftctl apply -f $m.yaml"
		else
			not_ok "kshiftctl apply -f $m.yaml"
			diag "$out"
		fi
	done

	res=$(ks_client split "http://[2001:2:0:100::1]:80/" 300)
	diag "split v6: $res"
	check "IPv6 HTTP: 300 new connections to [2001:2:0:100::1]:80, none failed" \
		[ "$(jq_py "$res" 'd["failures"]')" = 0 ]
	check "IPv6 HTTP: stable and canary both take connections, on IPv6 endpoints" \
		jq_ok "$res" 'd["backends"].get("stable", 0) > 0 and d["backends"].get("canary", 0) > 0 and all(":" in e for e in d["endpoints"])'

	udp_check 198.18.100.2 53
	udp_check 2001:2:0:100::2 53

	refused_check 198.18.100.9
	refused_check 2001:2:0:100::9

	partial_check

	ks_mode_end
done
ks_done
