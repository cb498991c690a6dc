#!/usr/bin/env bash
# The test network of SPEC.md, for the demo, the end-to-end tests and anyone
# trying kshift by hand. Every name starts with PREFIX-, so networks of
# different users stand side by side:
#
#   PREFIX-client  eth0 198.18.1.2/24  2001:2:0:1::2/64 --- cli0 \
#   PREFIX-ep0     eth0 198.18.2.2/24  2001:2:0:2::2/64 --- ep0   > PREFIX-node
#   PREFIX-ep1     eth0 198.18.3.2/24  2001:2:0:3::2/64 --- ep1  /  forwards, runs kshiftd
#
# One namespace and one veth per endpoint, like pods. The node routes each
# endpoint by a /32 (/128) to its veth, as Kubernetes CNIs route pods, and
# carries the gateway address 198.18.N.1 (2001:2:0:N::1) on every veth of
# subnet N. Nothing has a route out, so no packet can leave these
# namespaces. The node's veths complete checksums themselves (tx offload
# off), so a receiver verifies every checksum kshift rewrote.
#
#   scripts/testnet.sh up PREFIX NAME:IPV4...   builds it and starts an HTTP
#                                               backend on port 8080 of every
#                                               endpoint (tests/e2e/httpd.py)
#   scripts/testnet.sh down PREFIX              stops what runs there and
#                                               removes every PREFIX- namespace
#
# Sourced, it defines the tn_* functions and does nothing else.

TN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# the system python: it starts faster than a version manager's shim
TN_PYTHON=$(command -v /usr/bin/python3 || command -v python3)

# tn_v6 IPV4: the IPv6 twin of a test address: 198.18.N.M -> 2001:2:0:N::M
tn_v6() {
	local IFS=.
	# shellcheck disable=SC2086
	set -- $1
	printf '2001:2:0:%s::%s\n' "$3" "$4"
}

# tn_ns_add NS: a namespace with loopback up, no DAD (addresses are usable
# at once; binding a tentative IPv6 address fails) and no router
# solicitations (nothing here advertises routes)
tn_ns_add() {
	ip netns add "$1" || return
	ip netns exec "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0 \
		net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.router_solicitations=0 \
		net.ipv6.conf.default.router_solicitations=0 >/dev/null &&
		ip -n "$1" link set lo up
}

# tn_up PREFIX NAME:IPV4...: builds the network; endpoint i lives in
# PREFIX-epi behind the node's veth epi
tn_up() {
	local pfx=$1 node=$1-node client=$1-client i=0 ep addr net ns v6 gw6
	shift
	tn_ns_add "$node" &&
		ip netns exec "$node" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
			net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 >/dev/null &&
		tn_ns_add "$client" &&
		ip -n "$node" link add name cli0 type veth peer name eth0 netns "$client" &&
		ip -n "$node" addr add 198.18.1.1/24 dev cli0 &&
		ip -n "$node" addr add 2001:2:0:1::1/64 dev cli0 nodad &&
		ip netns exec "$node" ethtool -K cli0 tx off >/dev/null &&
		ip -n "$node" link set cli0 up &&
		ip -n "$client" addr add 198.18.1.2/24 dev eth0 &&
		ip -n "$client" addr add 2001:2:0:1::2/64 dev eth0 nodad &&
		ip -n "$client" link set eth0 up &&
		ip -n "$client" route add default via 198.18.1.1 &&
		ip -n "$client" -6 route add default via 2001:2:0:1::1 || return

	for ep in "$@"; do
		addr=${ep#*:} net=${ep#*:}
		net=${net%.*}
		ns=$pfx-ep$i v6=$(tn_v6 "$addr") gw6=$(tn_v6 "$net.1")
		tn_ns_add "$ns" &&
			ip -n "$node" link add name "ep$i" type veth peer name eth0 netns "$ns" &&
			ip -n "$node" addr add "$net.1/32" dev "ep$i" &&
			ip -n "$node" addr add "$gw6/128" dev "ep$i" nodad &&
			ip netns exec "$node" ethtool -K "ep$i" tx off >/dev/null &&
			ip -n "$node" link set "ep$i" up &&
			ip -n "$node" route add "$addr/32" dev "ep$i" &&
			ip -n "$node" -6 route add "$v6/128" dev "ep$i" &&
			ip -n "$ns" addr add "$addr/24" dev eth0 &&
			ip -n "$ns" addr add "$v6/64" dev eth0 nodad &&
			ip -n "$ns" link set eth0 up &&
			ip -n "$ns" route add default via "$net.1" dev eth0 &&
			ip -n "$ns" -6 route add default via "$gw6" dev eth0 || return
		i=$((i + 1))
	done
}

# tn_ifaces N: the node-side veths of a network with N endpoints, for --iface
tn_ifaces() {
	local i list=cli0
	for ((i = 0; i < $1; i++)); do
		list+=",ep$i"
	done
	echo "$list"
}

# tn_serve PREFIX DIR TCP_PORT [UDP_PORT] -- NAME:IPV4...: a backend server
# (tests/e2e/httpd.py) in each endpoint's namespace, on its IPv4 and IPv6
# address, answering with its name; logs and ready files go to DIR. Returns
# once every one listens, 1 if one did not within 10 s. The servers run in
# the namespaces, so tn_down ends them.
tn_serve() {
	local pfx=$1 dir=$2 tcp=$3 udp= i=0 ep args
	shift 3
	[[ $1 != -- ]] && { udp=$1; shift; }
	shift
	for ep in "$@"; do
		args=(--name "${ep%%:*}" --addr "${ep#*:}" --addr "$(tn_v6 "${ep#*:}")" --tcp "$tcp"
			--ready-file "$dir/httpd$i.ready")
		[[ -n $udp ]] && args+=(--udp "$udp")
		ip netns exec "$pfx-ep$i" "$TN_PYTHON" "$TN_ROOT/tests/e2e/httpd.py" "${args[@]}" \
			</dev/null >>"$dir/httpd$i.log" 2>&1 &
		disown # ended with its namespace, by tn_down; no job-control notice then
		i=$((i + 1))
	done
	for ((i = 0; i < $#; i++)); do
		for _ in $(seq 200); do
			[[ -e $dir/httpd$i.ready ]] && break
			sleep 0.05
		done
		[[ -e $dir/httpd$i.ready ]] || return 1
	done
}

# tn_down PREFIX: kills whatever runs in PREFIX- namespaces, removes them
tn_down() {
	local ns pid
	for ns in $(ip netns list | awk -v p="$1-" 'index($1, p) == 1 { print $1 }'); do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null
		done
		ip netns del "$ns" 2>/dev/null
	done
	return 0
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	set -uo pipefail
	cmd=${1:-} pfx=${2:-}
	if [[ -z $pfx || ! $cmd =~ ^(up|down)$ || ($cmd == up && $# -lt 3) ]]; then
		echo "usage: $0 up PREFIX NAME:IPV4... | down PREFIX" >&2
		exit 2
	fi
	shift 2
	if [[ $cmd == down ]]; then
		tn_down "$pfx"
		rm -rf "/tmp/testnet-$pfx"
		exit 0
	fi
	mkdir -p "/tmp/testnet-$pfx"
	if ! tn_up "$pfx" "$@" || ! tn_serve "$pfx" "/tmp/testnet-$pfx" 8080 -- "$@"; then
		echo "testnet: building $pfx failed" >&2
		tn_down "$pfx"
		exit 1
	fi
	echo "testnet $pfx: client $pfx-client, node $pfx-node (interfaces $(tn_ifaces $#))," \
		"HTTP on port 8080 of every endpoint"
fi
