#!/usr/bin/env bash
# Why native XDP on a veth costs bulk TCP most of its throughput (issue #12).
#
#   scripts/bench-veth-xdp.sh [SECONDS]      (root; default 3 s per run)
#
# client ns eth0 -- n0 [node ns, forwards] n1 -- eth0 server ns, 198.18.1.0/24
# and 198.18.2.0/24, iperf3 one stream client -> server, with on the node's
# two veths:
#   none         no XDP program
#   xdp          a native XDP program that only returns XDP_PASS
#   xdp.frags    the same program loaded as multi-buffer aware (BPF_F_XDP_HAS_FRAGS)
#   gro-off      no XDP program, GRO off on the node's veths
# and for each the client's TSO state (ethtool -k) and its max MTU, which
# show what the kernel changed on the far end of the node's veth. Client and server keep Linux's
# default offloads, as a pod has. Everything lives in namespaces made here,
# removed on exit.
set -uo pipefail
SECS=${1:-3}
P=ksvx-$$
TMP=$(mktemp -d "/tmp/$P-XXXXXX")
cleanup() {
	local ns
	for ns in c n s; do ip netns del "$P-$ns" 2>/dev/null; done
	mountpoint -q "$TMP/bpf" && umount "$TMP/bpf"
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
[[ $(id -u) -eq 0 ]] || { echo "run as root" >&2; exit 1; }

cat >"$TMP/pass.c" <<'EOF'
#define XDP_PASS 2
struct xdp_md;
#define SEC(s) __attribute__((section(s), used))
SEC("xdp") int pass(struct xdp_md *ctx) { return XDP_PASS; }
SEC("xdp.frags") int pass_frags(struct xdp_md *ctx) { return XDP_PASS; }
char _license[] SEC("license") = "GPL";
EOF
clang -O2 -g -target bpf -c "$TMP/pass.c" -o "$TMP/pass.o" || exit 1
mkdir -p "$TMP/bpf" && mount -t bpf bpf "$TMP/bpf" || exit 1
bpftool prog loadall "$TMP/pass.o" "$TMP/bpf/p" type xdp || exit 1

nsx() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }
for ns in c n s; do ip netns add "$P-$ns" && ip -n "$P-$ns" link set lo up || exit 1; done
ip -n "$P-n" link add n0 type veth peer name eth0 netns "$P-c" &&
	ip -n "$P-n" link add n1 type veth peer name eth0 netns "$P-s" || exit 1
nsx n sysctl -qw net.ipv4.ip_forward=1
ip -n "$P-c" addr add 198.18.1.2/24 dev eth0 && ip -n "$P-n" addr add 198.18.1.1/24 dev n0 &&
	ip -n "$P-n" addr add 198.18.2.1/24 dev n1 && ip -n "$P-s" addr add 198.18.2.2/24 dev eth0 ||
	exit 1
for x in "c eth0" "n n0" "n n1" "s eth0"; do
	# shellcheck disable=SC2086
	set -- $x
	ip -n "$P-$1" link set "$2" up
done
ip -n "$P-c" route add 198.18.0.0/15 via 198.18.1.1 &&
	ip -n "$P-s" route add 198.18.0.0/15 via 198.18.2.1 || exit 1
nsx s iperf3 -s -D -p 5201 --pidfile "$TMP/iperf3.pid" || exit 1
sleep 0.3

xdp() { # xdp PROG|off
	local d
	for d in n0 n1; do
		if [[ $1 == off ]]; then
			nsx n ip link set dev "$d" xdp off
		else
			nsx n bpftool net attach xdpdrv pinned "$TMP/bpf/p/$1" dev "$d" overwrite || return 1
		fi
	done
}

run() {
	local name=$1 gbps tso mtu
	gbps=$(nsx c iperf3 -c 198.18.2.2 -t "$SECS" -J | python3 -c \
		'import json,sys; print("%.1f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))')
	tso=$(nsx c ethtool -k eth0 | awk '/tx-tcp-segmentation:/ { $1 = ""; print }')
	mtu=$(nsx c ip -d link show eth0 | grep -o 'maxmtu [0-9]*')
	printf '%-10s %6s Gbit/s   client tx-tcp-segmentation:%s, %s\n' \
		"$name" "$gbps" "$tso" "$mtu"
}

echo "iperf3, 1 stream, $SECS s, client -> node (forwarding) -> server; kernel $(uname -r)"
echo "(two rounds, interleaved: this machine's speed wanders)"
for r in 1 2; do
	run none
	xdp pass && run xdp
	xdp off
	xdp pass_frags && run xdp.frags
	xdp off
	nsx n ethtool -K n0 gro off && nsx n ethtool -K n1 gro off && run gro-off
	nsx n ethtool -K n0 gro on && nsx n ethtool -K n1 gro on
done
kill "$(cat "$TMP/iperf3.pid")" 2>/dev/null
