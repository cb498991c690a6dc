#!/usr/bin/env bash
# make demo: every deployment strategy kshift serves, seen live, on a
# throwaway test network (scripts/testnet.sh) that is removed afterwards,
# also on Ctrl-C. HTTP backends answer with their version (stable, canary);
# a client namespace drives new connections from 48 addresses all along
# (scripts/demo-load.py), and each step narrates the command it runs:
# canary 10% -> 50% -> promote, rollback, blue/green both ways, an A/B rule,
# a dark launch, client cohorts. It ends with a table of configured against
# observed canary shares per step and a PNG chart of each version's share
# of new connections over time (scripts/demo-report.py), in DEMO_OUT
# (default build/demo). About 2 minutes.
#   KSHIFTD, KSHIFTCTL: the binaries (default build/); DEMO_HOLD: seconds per step (7)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/testnet.sh

KSHIFTD=${KSHIFTD:-build/kshiftd}
KSHIFTCTL=${KSHIFTCTL:-build/kshiftctl}
HOLD=${DEMO_HOLD:-7}
OUTDIR=${DEMO_OUT:-build/demo}
PY=$(command -v /usr/bin/python3 || command -v python3)
pfx=ksdemo-$$
tmp=$(mktemp -d /tmp/ksdemo-XXXXXX)
sock=$tmp/kshiftd.sock
daemon=
VIP=http://198.18.100.1:80/

cleanup() {
	touch "$tmp/stop" 2>/dev/null || true
	[[ -n $daemon ]] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
	tn_down "$pfx"
	umount "$tmp/bpf" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
ctl() { show "$KSHIFTCTL" --socket "$sock" "$@"; }
now() { date +%s.%N; }

# mark EXPECTED_CANARY_PERCENT LABEL: the previous step ends, this one
# starts now, right before its command (which is in force when it returns,
# well within the second that the report leaves out of every step)
step_start=
step_label=
step_want=
mark() {
	local t
	t=$(now)
	[[ -n $step_start ]] && echo "$step_start $t $step_want $step_label" >>"$tmp/steps"
	step_start=$t
	step_want=$1
	step_label=$2
}
hold() {
	sleep "$HOLD"
}

# manifest WEIGHT_STABLE WEIGHT_CANARY [AFFINITY [RULE_SOURCE]]
manifest() {
	cat <<YAML
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
    endpoints: ["198.18.2.2:8080", "198.18.2.3:8080"]
    weight: $1
  - name: canary
    endpoints: ["198.18.3.2:8080"]
    weight: $2
  affinity: ${3:-connection}
YAML
	[[ -n ${4:-} ]] && printf '  rules:\n  - sources: ["%s"]\n    backend: canary\n' "$4"
	return 0
}

if [[ $(id -u) -ne 0 ]]; then
	echo "make demo needs root: it builds network namespaces and loads BPF programs" >&2
	exit 1
fi
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)

say "A client (48 addresses), a node running kshiftd, stable (2 pods) and canary (1 pod)"
endpoints=(stable:198.18.2.2 stable:198.18.2.3 canary:198.18.3.2)
tn_up "$pfx" "${endpoints[@]}"
tn_serve "$pfx" "$tmp" 8080 -- "${endpoints[@]}"
sources=()
for i in $(seq 10 57); do
	ip -n "$pfx-client" addr add "198.18.1.$i/24" dev eth0
	sources+=("198.18.1.$i")
done
mkdir "$tmp/bpf"
mount -t bpf bpf "$tmp/bpf"
ip netns exec "$pfx-node" "$KSHIFTD" --iface "$(tn_ifaces 3)" --socket "$sock" \
	--pin-path "$tmp/bpf/kshift" --state-dir "$tmp/state" 2>"$tmp/kshiftd.log" &
daemon=$!
for _ in $(seq 200); do [[ -S $sock ]] && break; sleep 0.05; done
sed 's/^/   | /' "$tmp/kshiftd.log"

say "Canary: 90% of new connections to stable, 10% to canary"
manifest 90 10 >"$tmp/web.yaml"
sed 's/^/   /' "$tmp/web.yaml"
ctl apply -f "$tmp/web.yaml"
mark 10 "canary 10%" # the first step starts with the load
ip netns exec "$pfx-client" "$PY" scripts/demo-load.py "$VIP" "$tmp/load" "$tmp/stop" \
	"$(IFS=,; echo "${sources[*]}")" </dev/null >/dev/null 2>&1 &
echo "   (load: new connections back to back from 48 client addresses, all along)"
hold
ctl get web

say "The canary looks healthy: half the new connections"
mark 50 "canary 50%"
ctl set web stable=50 canary=50
hold
ctl top web --once

say "Promote: every new connection to the canary (established ones stay)"
mark 100 "promote"
ctl promote web
hold

say "Roll back: every new connection to stable again"
mark 0 "rollback"
ctl rollback web
hold

say "Blue/green: stable is blue, canary is green; switch all at once, atomically"
mark 100 "blue/green: switch to green"
ctl switch web canary
hold
mark 0 "blue/green: switch back to blue"
ctl switch web stable
hold

say "A/B test: clients in 198.18.1.16/28 (16 of the 48) always reach the canary"
manifest 100 0 connection 198.18.1.16/28 >"$tmp/web.yaml"
sed -n '/rules:/,$p' "$tmp/web.yaml" | sed 's/^/   /'
mark "$(awk 'BEGIN { printf "%.1f", 100 * 16 / 48 }')" "A/B: 198.18.1.16/28 to canary"
ctl apply -f "$tmp/web.yaml"
hold
ctl get web

say "Dark launch: weight 0, and one tester's address (198.18.1.10) reaches it"
manifest 100 0 connection 198.18.1.10/32 >"$tmp/web.yaml"
mark "$(awk 'BEGIN { printf "%.1f", 100 / 48 }')" "dark launch: 198.18.1.10 only"
ctl apply -f "$tmp/web.yaml"
hold

say "Client cohorts (affinity: client): 25%, then 50%; a client never moves back"
manifest 75 25 client >"$tmp/web.yaml"
mark 25 "cohorts: canary 25%"
ctl apply -f "$tmp/web.yaml"
hold
mark 50 "cohorts: canary 50%"
ctl set web stable=50 canary=50
hold
mark - end
touch "$tmp/stop"
sleep 2.5 # the load's last connections

say "Configured against observed: the canary's share of new connections per step"
cp "$tmp/load" "$OUTDIR/load.txt"
cp "$tmp/steps" "$OUTDIR/steps.txt"
"$PY" scripts/demo-report.py "$OUTDIR/load.txt" "$OUTDIR/steps.txt" "$OUTDIR"
"$PY" - "$OUTDIR/load.txt" "$OUTDIR/steps.txt" <<'PY'
import sys
# cohorts: a client on the canary at 25% stays on it at 50%
steps = [l.split(None, 3) for l in open(sys.argv[2])]
spans = {s[3].strip(): (float(s[0]) + 1, float(s[1])) for s in steps}
on = {}
for line in open(sys.argv[1]):
    t, src, v = line.split()
    for name in ("cohorts: canary 25%", "cohorts: canary 50%"):
        a, b = spans.get(name, (0, 0))
        if a <= float(t) < b and v != "failed":
            on.setdefault(name, {}).setdefault(src, set()).add(v)
c25 = {s for s, v in on.get("cohorts: canary 25%", {}).items() if v == {"canary"}}
c50 = {s for s, v in on.get("cohorts: canary 50%", {}).items() if v == {"canary"}}
mixed = sum(1 for d in on.values() for v in d.values() if len(v) > 1)
print(f"cohorts: {len(c25)} clients on the canary at 25%, {len(c50)} at 50%, "
      f"{len(c25 - c50)} moved back, {mixed} saw both versions within a step")
PY
# Shadow traffic (docs/shadow.md): a shadow pod gets a copy of every new
# connection, replayed by kshiftd; the client only ever sees stable's answers
demo_shadow() {
	local ns=$pfx-ep3 i
	say "Shadow: a new version gets a copy of live requests; its answers are compared, then dropped"
	tn_ns_add "$ns"
	ip -n "$pfx-node" link add name ep3 type veth peer name eth0 netns "$ns"
	ip -n "$pfx-node" addr add 198.18.4.1/32 dev ep3
	ip -n "$pfx-node" link set ep3 up
	ip -n "$pfx-node" route add 198.18.4.2/32 dev ep3
	ip -n "$ns" addr add 198.18.4.2/24 dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" route add default via 198.18.4.1 dev eth0
	ip netns exec "$ns" "$PY" tests/e2e/httpd.py --name shadow --addr 198.18.4.2 --tcp 8080 \
		--ready-file "$tmp/shadow.ready" </dev/null >/dev/null 2>&1 &
	disown
	for _ in $(seq 100); do [[ -e $tmp/shadow.ready ]] && break; sleep 0.05; done
	cat >"$tmp/shadow.yaml" <<YAML
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
  - {name: stable, endpoints: ["198.18.2.2:8080", "198.18.2.3:8080"], weight: 100}
  - {name: shadow, endpoints: ["198.18.4.2:8080"], weight: 0}
  mirror: {backend: shadow, percent: 100}
YAML
	sed 's/^/   /' "$tmp/shadow.yaml"
	ctl apply -f "$tmp/shadow.yaml"
	echo "   (50 requests from the client: what it sees)"
	ip netns exec "$pfx-client" "$PY" -c '
import collections, urllib.request
seen = collections.Counter()
for i in range(50):
    seen[urllib.request.urlopen("'"$VIP"'", timeout=3).read().decode().split()[0]] += 1
print("   client saw:", dict(seen))'
	sleep 1
	ctl get web -o wide
	ctl mirror web shadow --percent 10
	ctl mirror web --off
}
demo_shadow

say "Done; removing the test network"
