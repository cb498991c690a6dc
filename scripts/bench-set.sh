#!/usr/bin/env bash
# How long a weight change takes, the dataplane change included: median and
# p99 over N calls (default 200) of `kshiftctl set`, alternating two
# weightings, as kshiftd measures it (elapsed_us in its answer: from the
# request read whole to the answer ready) and around the kshiftctl process.
# Runs kshiftd on a veth (no traffic) in a namespace of its own.
#   scripts/bench-set.sh [N] [SHIFTS]   SHIFTS: how many shifts are loaded (default 1)
#   KS_BUILD=build-x scripts/bench-set.sh   binaries from another build directory
set -euo pipefail
cd "$(dirname "$0")/.."
B=${KS_BUILD:-build}
n=${1:-200}
shifts=${2:-1}
ns=ksbs-$$
tmp=$(mktemp -d)
cleanup() {
	# (set -e: kshiftd's status from wait must not end the cleanup early)
	[[ -n ${pid:-} ]] && kill "$pid" 2>/dev/null && { wait "$pid" 2>/dev/null || true; }
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

ip netns add "$ns"
ip -n "$ns" link add dummy0 type veth peer name dummy1
ip -n "$ns" link set dummy0 up
python3 - "$shifts" >"$tmp/shifts.yaml" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print(f"""---
apiVersion: kshift.dev/v1alpha1
kind: TrafficShift
metadata: {{name: web{i}}}
spec:
  frontend: {{addresses: ["198.18.{100 + i // 60000}.{1 + i // 250 % 240}"], ports: [{{port: {1000 + i % 250}, protocol: TCP}}]}}
  backends:
  - {{name: stable, endpoints: ["198.18.2.2:8080", "198.18.2.3:8080"], weight: 90}}
  - {{name: canary, endpoints: ["198.18.3.2:8080"], weight: 10}}""")
PY
ip netns exec "$ns" "$B/kshiftd" --iface dummy0 --mode tc --socket "$tmp/sock" \
	--pin-path /sys/fs/bpf/ksbs-$$ 2>"$tmp/log" &
pid=$!
# a loaded machine takes seconds to load the BPF object
for _ in $(seq 600); do [[ -S $tmp/sock ]] && break; sleep 0.05; done
# microseconds from bash's own clock: no process of its own to time
now_us() { local t=${EPOCHREALTIME/./}; echo $((10#$t)); }
start=$(now_us)
out=$("$B/kshiftctl" --socket "$tmp/sock" -o json apply -f "$tmp/shifts.yaml")
load_ms=$((($(now_us) - start) / 1000))
[[ $out =~ \"elapsed_us\":\ *([0-9]+) ]] && load_own_us=${BASH_REMATCH[1]}

last=web$((shifts - 1))
for i in $(seq "$n"); do
	w=$((i % 2 ? 0 : 90))
	t0=${EPOCHREALTIME/./}
	out=$("$B/kshiftctl" --socket "$tmp/sock" -o json set "$last" stable=$w canary=$((100 - w)))
	t1=${EPOCHREALTIME/./}
	[[ $out =~ \"elapsed_us\":\ *([0-9]+) ]] || { echo "no elapsed_us in: $out" >&2; exit 1; }
	echo $((10#$t1 - 10#$t0)) >>"$tmp/us.raw"
	echo "${BASH_REMATCH[1]}"
done | sort -n >"$tmp/own"
sort -n "$tmp/us.raw" >"$tmp/us"
# the same clock around a process that does nothing: what starting any
# process costs on this machine right now
for i in $(seq "$n"); do
	t0=${EPOCHREALTIME/./}
	/bin/true
	t1=${EPOCHREALTIME/./}
	echo $((10#$t1 - 10#$t0))
done | sort -n >"$tmp/true"
pct() { sed -n "$(((n * $2 + 99) / 100))p" "$1"; }
echo "$shifts shift(s) loaded in ${load_ms} ms (kshiftd's own time: ${load_own_us:-?} us)"
echo "kshiftctl set, $n calls: kshiftd's own time median $(pct "$tmp/own" 50) us," \
	"p99 $(pct "$tmp/own" 99) us; around kshiftctl median $(pct "$tmp/us" 50) us," \
	"p99 $(pct "$tmp/us" 99) us (/bin/true: median $(pct "$tmp/true" 50) us," \
	"p99 $(pct "$tmp/true" 99) us)"
