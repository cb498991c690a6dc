#!/usr/bin/env bash
# make bench-k8s: kshiftd --kubernetes against the fake API server
# (tests/k8s/fakeapi.py) with N Services (default 10,000), each with an
# EndpointSlice, and one TrafficShift per two Services. Prints how long
# kshiftd takes to list and program them all, the time from a patch at the
# API to the dataplane (median and p99 over 100), and kshiftd's RSS and CPU
# under 50 endpoint changes a second.
#
#   scripts/bench-k8s.sh [N_SERVICES]
#
# Everything runs in one network namespace of its own (ksb-k8s-PID-node): the
# fake listens on its loopback, kshiftd serves a veth pair inside it.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/testnet.sh
source tests/k8s/lib.sh

n=${1:-10000}
pfx=ksb-k8s-$$
ns=$pfx-node
tmp=$(mktemp -d "/tmp/ksb-k8s-$$-XXXXXX")
py=$TN_PYTHON
kpid=

cleanup() {
	[[ -n $kpid ]] && kill "$kpid" 2>/dev/null && wait "$kpid" 2>/dev/null
	fake_stop
	tn_down "$pfx"
	mountpoint -q "$tmp/bpf" && umount "$tmp/bpf"
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

tn_ns_add "$ns" &&
	ip -n "$ns" link add k0 type veth peer name k1 &&
	ip -n "$ns" addr add 198.18.1.1/24 dev k0 &&
	ip -n "$ns" link set k0 up && ip -n "$ns" link set k1 up || exit 1
mkdir -p "$tmp/bpf" && mount -t bpf bpf "$tmp/bpf" || exit 1

echo "bench-k8s: $n Services, $((n / 2)) TrafficShifts"
"$py" scripts/bench-k8s.py objects "$n" >"$tmp/objects.json"
printf '#!/bin/sh\nexec ip netns exec %s %s "$@"\n' "$ns" "$py" >"$tmp/py-in-ns"
chmod +x "$tmp/py-in-ns"
FAKE_PY=$tmp/py-in-ns fake_start "$tmp/api" --data "$tmp/objects.json" --history 100000 ||
	exit 1

t0=$EPOCHREALTIME
ip netns exec "$ns" "${KSHIFTD:-build/kshiftd}" --iface k0 --mode tc --socket "$tmp/sock" \
	--pin-path "$tmp/bpf/kshift" --state-dir "$tmp/state" --kubernetes \
	--kubeconfig "$tmp/api/kubeconfig" --node-name bench --metrics-addr 127.0.0.1:9402 \
	>"$tmp/kshiftd.log" 2>&1 &
kpid=$!
until ip netns exec "$ns" curl -sf http://127.0.0.1:9402/readyz -o /dev/null; do
	kill -0 "$kpid" 2>/dev/null || { echo "kshiftd exited:"; cat "$tmp/kshiftd.log"; exit 1; }
	sleep 0.1
done
sync_ms=$(((${EPOCHREALTIME//[!0-9]/} - ${t0//[!0-9]/}) / 1000))
echo "bench-k8s: kshiftd started, listed and programmed everything in $sync_ms ms"

ip netns exec "$ns" "$py" scripts/bench-k8s.py run --api "$FAKE_URL" --ca "$FAKE_CA" \
	--token "$FAKE_TOKEN" --socket "$tmp/sock" --pid "$kpid" --shifts $((n / 2)) \
	>"$tmp/result.json" || {
	echo "bench-k8s: failed; kshiftd's log ends:"
	tail -n 20 "$tmp/kshiftd.log"
	exit 1
}
cat "$tmp/result.json"
mkdir -p build/bench
"$py" - "$tmp/result.json" "$sync_ms" >build/bench/k8s.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
r["start_to_ready_ms"] = int(sys.argv[2])
print(json.dumps(r, indent=2))
PY
echo "bench-k8s: results in build/bench/k8s.json"
