#!/usr/bin/env bash
# make demo: a canary release and a blue/green switch with kshift, on a
# throwaway test network (scripts/testnet.sh) that is removed afterwards.
# Every step prints the command it runs and what 100 new HTTP connections
# through the frontend reached.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/testnet.sh

pfx=ksdemo-$$
tmp=$(mktemp -d /tmp/ksdemo-XXXXXX)
sock=$tmp/kshiftd.sock
daemon=

cleanup() {
	[[ -n $daemon ]] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
	tn_down "$pfx"
	umount "$tmp/bpf" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
ctl() { show build/kshiftctl --socket "$sock" "$@"; }

# 100 new connections from the client, one request each; a tally of who answered
tally() {
	local i
	for ((i = 0; i < 100; i++)); do
		ip netns exec "$pfx-client" curl -s -m 2 http://198.18.100.1/ || echo "(failed)"
	done | awk '{ n[$1]++ } END { for (b in n) printf "   %-8s %3d of 100\n", b, n[b] }' | sort
}

if [[ $(id -u) -ne 0 ]]; then
	echo "make demo needs root: it builds network namespaces and loads BPF programs" >&2
	exit 1
fi

step "A client, a node running kshiftd, stable (2 pods) and canary (1 pod)"
endpoints=(stable:198.18.2.2 stable:198.18.2.3 canary:198.18.3.2)
tn_up "$pfx" "${endpoints[@]}"
tn_serve "$pfx" "$tmp" 8080 -- "${endpoints[@]}"
mkdir "$tmp/bpf"
mount -t bpf bpf "$tmp/bpf"
ip netns exec "$pfx-node" build/kshiftd --iface "$(tn_ifaces 3)" --socket "$sock" \
	--pin-path "$tmp/bpf/kshift" 2>"$tmp/kshiftd.log" &
daemon=$!
for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.05; done
sed 's/^/   | /' "$tmp/kshiftd.log"

step "Canary: 90% stable, 10% canary"
sed 's/^/   /' manifests/examples/canary.yaml
ctl apply -f manifests/examples/canary.yaml
tally
ctl get

step "The canary looks healthy: half the new connections"
ctl set web stable=50 canary=50
tally

step "A bad change is refused, and nothing running changes"
ctl set web canary=5000000 || true
ctl get web

step "Blue/green: every new connection to canary at once"
ctl switch web canary
tally

step "Roll back: every new connection to stable again"
ctl rollback web
tally

step "No endpoint left: new connections are refused at once, not blackholed"
ctl set web stable=0 canary=0
show ip netns exec "$pfx-client" curl -sS -m 2 http://198.18.100.1/ || true

step "Done; removing the test network"
