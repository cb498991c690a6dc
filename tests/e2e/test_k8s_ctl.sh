#!/usr/bin/env bash
# End to end: kshiftctl --kubernetes and the kubectl plugin (kubectl kshift)
# against the fake API server (tests/k8s/fakeapi.py, on 127.0.0.1 only).
# Needs no root and no network namespace.
#   - apply creates the TrafficShift, keeps the fields local mode does not
#     use (frontend.service, backends[].service, labels), a second apply of
#     the same file changes nothing; a bad manifest is refused naming the
#     field and value, as in local mode
#   - get prints the shift with its status; -o json the object as stored
#   - set, switch, promote and rollback give the weights kshiftd gives a
#     local shift, bump the generation, keep every other backend field
#   - a 409 Conflict is retried; six in a row are reported
#   - unknown backends and weights out of range are refused (exit 1, named)
#   - kubectl finds the plugin on PATH; -n picks the namespace
#   - --wait times out with a message saying how many nodes programmed it,
#     and returns once status says every node has
#   - mirror, delete (names and -f), node-only commands, connection errors
#   - as root, with the real kshiftd --kubernetes in a network namespace of
#     the test's own (where the fake listens on that namespace's 127.0.0.1):
#     apply, set and promote --wait return once the daemon has programmed
#     the change, and the node's dataplane has the new weights
set -uo pipefail
KS_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$KS_ROOT/tests/k8s/lib.sh"
export -f fake_curl fake_ctl # for the checks run with bash -c
KSHIFTCTL=${KSHIFTCTL:-$KS_ROOT/build/kshiftctl}
BIN_DIR=$(cd "$(dirname "$KSHIFTCTL")" && pwd)
KSHIFTCTL=$BIN_DIR/$(basename "$KSHIFTCTL")
KSHIFTD=$(realpath -m "${KSHIFTD:-$BIN_DIR/kshiftd}")
TS=/apis/kshift.dev/v1alpha1/namespaces/default/trafficshifts

TESTS=0
FAILS=0
TMP=$(mktemp -d /tmp/kse-k8sctl.XXXXXX)
WRITER_PID=
KSHIFTD_PID=
NODE_NS=

cleanup() {
	[[ -n $WRITER_PID ]] && kill "$WRITER_PID" 2>/dev/null
	if [[ -n $KSHIFTD_PID ]]; then
		kill "$KSHIFTD_PID" 2>/dev/null
		wait "$KSHIFTD_PID" 2>/dev/null
	fi
	fake_stop
	mountpoint -q "$TMP/bpf" 2>/dev/null && umount "$TMP/bpf"
	[[ -n $NODE_NS ]] && ip netns del "$NODE_NS" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ok() { TESTS=$((TESTS + 1)); echo "ok $TESTS - $*"; }
not_ok() { TESTS=$((TESTS + 1)); FAILS=$((FAILS + 1)); echo "not ok $TESTS - $*"; }
# check MSG COMMAND...: ok when COMMAND succeeds
check() {
	local msg=$1
	shift
	if "$@"; then ok "$msg"; else not_ok "$msg"; fi
}

# ctl ARGS...: kshiftctl --kubernetes; stdout in $TMP/out, stderr in
# $TMP/err, exit status in $RC
ctl() {
	"$KSHIFTCTL" --kubernetes "$@" >"$TMP/out" 2>"$TMP/err"
	RC=$?
	if ((RC)); then head -n 2 "$TMP/err" | sed "s/^/# stderr: /"; fi
}

# field JQ [NAME [NS]]: a field of the stored object, as the API returns it
field() {
	fake_curl GET "/apis/kshift.dev/v1alpha1/namespaces/${3:-default}/trafficshifts/${2:-web}" |
		jq -r "$1"
}
weights() { field '[.spec.backends[] | "\(.name)=\(.weight)"] | join(" ")' "$@"; }
gen() { field .metadata.generation "$@"; }

expect() { # expect WANT GOT: ok when equal, says both otherwise
	[[ $1 == "$2" ]] || { echo "# want '$1', got '$2'"; return 1; }
}
stderr_has() { grep -qF -- "$1" "$TMP/err" || { echo "# stderr lacks '$1'"; return 1; }; }
stdout_has() { grep -qF -- "$1" "$TMP/out" || { echo "# stdout lacks '$1'"; return 1; }; }

manifest() { # manifest CANARY_WEIGHT [NAMESPACE_LINE]
	cat <<EOF
apiVersion: kshift.dev/v1alpha1
kind: TrafficShift
metadata:
  name: web
  labels: {app: web, "app.kubernetes.io/part-of": shop}
${2:-}
spec:
  frontend:
    service: web
    addresses: ["198.18.100.1"]
    ports:
    - {port: 80, protocol: TCP}
  backends:
  - name: stable
    service: web-v1
    endpoints: ["198.18.2.2:8080"]
    weight: 90
  - name: canary
    service: web-v2
    endpoints: ["198.18.3.2:8080"]
    weight: $1
EOF
}

# status_writer: plays the daemons for ~15 s: whenever generation moves
# past status.observedGeneration, reports it programmed on 1 of 1 nodes
status_writer() {
	local i g body
	for ((i = 0; i < 150; i++)); do
		g=$(gen)
		if [[ $g =~ ^[0-9]+$ && $(field '.status.observedGeneration // 0') != "$g" ]]; then
			body=$(jq -nc --argjson g "$g" '{status: {observedGeneration: $g,
				nodes: {programmed: 1, total: 1},
				conditions: [{type: "Accepted", status: "True", observedGeneration: $g,
					      reason: "Accepted", message: ""},
					     {type: "Programmed", status: "True", observedGeneration: $g,
					      reason: "Programmed", message: "programmed on 1 of 1 nodes"}]}}')
			fake_curl PATCH "$TS/web/status" -H 'Content-Type: application/merge-patch+json' \
				-d "$body" >/dev/null
		fi
		sleep 0.1
	done
}

# node_weights: the weights of web in the node's dataplane, "a=1 b=2"
node_weights() {
	"$KSHIFTCTL" --socket "$TMP/sock" get web -o json 2>/dev/null |
		jq -r '[.spec.backends[] | "\(.name)=\(.weight)"] | join(" ")'
}

# node_section: run by this script inside a network namespace of its own
# (bash test_k8s_ctl.sh --node); prints TAP lines without numbers, which
# the outer run counts
node_section() {
	local w
	ip link set lo up
	ip link add kc0 type veth peer name kc1 && ip link set kc0 up && ip link set kc1 up
	mkdir -p "$TMP/bpf" && mount -t bpf bpf "$TMP/bpf"
	if ! fake_start "$TMP/fake" --bookmark-interval 0; then
		echo "not ok - node: the fake API server in the namespace"
		return
	fi
	fake_curl POST /api/v1/namespaces -H 'Content-Type: application/json' \
		-d '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"kshift-system"}}' >/dev/null
	"$KSHIFTD" --kubernetes --kubeconfig "$KUBECONFIG" --iface kc0 --mode tc \
		--socket "$TMP/sock" --pin-path "$TMP/bpf/kshift" --state-dir "$TMP/state" \
		--node-name n1 >"$TMP/kshiftd.log" 2>&1 &
	KSHIFTD_PID=$!
	printf '%s\n' 'apiVersion: kshift.dev/v1alpha1' 'kind: TrafficShift' 'metadata: {name: web}' \
		'spec:' '  frontend: {addresses: ["198.18.100.1"], ports: [{port: 80, protocol: TCP}]}' \
		'  backends:' '  - {name: stable, endpoints: ["198.18.2.2:8080"], weight: 90}' \
		'  - {name: canary, endpoints: ["198.18.3.2:8080"], weight: 10}' >"$TMP/node.yaml"
	ctl apply -f "$TMP/node.yaml" --wait --timeout 20s
	if [[ $RC == 0 ]] && grep -q 'generation 1 programmed on 1 of 1 node(s)' "$TMP/out"; then
		echo "ok - node: apply --wait returns once kshiftd has programmed it"
	else
		echo "not ok - node: apply --wait returns once kshiftd has programmed it"
	fi
	ctl set web stable=50 canary=50 --wait --timeout 20s
	w=$(node_weights)
	if [[ $RC == 0 && $w == "stable=50 canary=50" ]]; then
		echo "ok - node: set --wait, then the node's dataplane has stable=50 canary=50"
	else
		echo "not ok - node: set --wait, then the node's dataplane has stable=50 canary=50 ($w)"
	fi
	ctl promote web --wait --timeout 20s
	w=$(node_weights)
	if [[ $RC == 0 && $w == "stable=0 canary=100" ]]; then
		echo "ok - node: promote --wait, then the node's dataplane has stable=0 canary=100"
	else
		echo "not ok - node: promote --wait, then the node's dataplane has stable=0 canary=100 ($w)"
	fi
	# on a failure, what the daemon said
	[[ $RC == 0 ]] || tail -n 20 "$TMP/kshiftd.log" | sed 's/^/# kshiftd: /'
}

if [[ ${1:-} == --node ]]; then
	node_section
	exit 0
fi

if ! [[ -x $KSHIFTCTL ]] || ! fake_start "$TMP/fake" --bookmark-interval 0; then
	not_ok "set-up: $KSHIFTCTL and the fake API server"
	echo "1..$TESTS"
	exit 1
fi

# --- apply ---
manifest 10 >"$TMP/web.yaml"
ctl apply -f "$TMP/web.yaml"
check "apply creates the shift" expect "0 default/web created (generation 1)" "$RC $(cat "$TMP/out")"
check "apply keeps frontend.service, backends[].service and labels" \
	expect "web web-v1 web-v2 shop" \
	"$(field '"\(.spec.frontend.service) \(.spec.backends[0].service) \(.spec.backends[1].service) \(.metadata.labels["app.kubernetes.io/part-of"])"')"
ctl apply -f - <"$TMP/web.yaml"
check "apply of the same file (stdin) changes nothing" \
	expect "0 default/web unchanged (generation 1) 1" "$RC $(cat "$TMP/out") $(gen)"
manifest 2000000 >"$TMP/bad.yaml"
ctl apply -f "$TMP/bad.yaml"
check "apply of a bad weight: exit 1 naming field and value, nothing sent" \
	bash -c "[[ $RC == 1 ]] && grep -q 'spec.backends\[1\].weight: 2000000' '$TMP/err' &&
		 [[ \$(jq -r .spec.backends[1].weight <<<'$(fake_curl GET "$TS/web")') == 10 ]]"

# --- get ---
ctl get
check "get lists the shift, its backends and weights" \
	bash -c "[[ $RC == 0 ]] && grep -qE '^default +web +stable +90 +90.0%' '$TMP/out' &&
		 grep -qE '^ +canary +10 +10.0%' '$TMP/out'"
ctl get web -o json
check "get -o json: the object as the API stored it" \
	expect "0 web 1" "$RC $(jq -r '"\(.metadata.name) \(.metadata.generation)"' "$TMP/out")"
ctl get web -o yaml
cp "$TMP/out" "$TMP/got.yaml"
ctl apply -f - <"$TMP/got.yaml"
check "get -o yaml applies again (server-set fields dropped), unchanged" \
	expect "0 default/web unchanged (generation 1)" "$RC $(cat "$TMP/out")"
ctl get nope
check "get of a missing shift: exit 1, API message with the HTTP status" \
	bash -c "[[ $RC == 1 ]] && grep -q 'default/nope: .*not found (HTTP 404)' '$TMP/err'"

# --- weights ---
ctl set web stable=50 canary=50
check "set: new weights, generation 2, printed with shares" \
	expect "0 stable=50 canary=50 2" "$RC $(weights) $(gen)"
check "set prints the weights, shares and generation" \
	stdout_has "default/web generation 2: stable 50 (50.0%), canary 50 (50.0%)"
check "set keeps every other backend field" \
	expect "web-v1 198.18.3.2:8080" \
	"$(field '"\(.spec.backends[0].service) \(.spec.backends[1].endpoints[0])"')"
ctl switch web canary
check "switch: all the weight to canary" expect "0 stable=0 canary=100" "$RC $(weights)"
ctl rollback web
check "rollback: all the weight to the first backend" expect "0 stable=100 canary=0" "$RC $(weights)"
ctl promote web
check "promote: all the weight to the last backend" expect "0 stable=0 canary=100" "$RC $(weights)"
ctl promote web stable
check "promote BACKEND: all the weight to it" expect "0 stable=100 canary=0 6" "$RC $(weights) $(gen)"
ctl set web canary=25
check "set of one backend keeps the others' weights" expect "0 stable=100 canary=25" "$RC $(weights)"

# --- conflicts ---
fake_ctl conflict count=1 >/dev/null
ctl set web stable=70 canary=30
check "a 409 Conflict is retried: set succeeds" expect "0 stable=70 canary=30" "$RC $(weights)"
check "the fake did answer 409 once" grep -qE 'PATCH [^ ]*trafficshifts/web[^ ]* 409' "$FAKE_DIR/requests.log"
fake_ctl conflict count=6 >/dev/null
g=$(gen)
ctl set web stable=1 canary=1
check "six conflicts in a row: exit 1, reported with HTTP 409, nothing changed" \
	bash -c "[[ $RC == 1 ]] && grep -q 'default/web: .*(HTTP 409)' '$TMP/err' &&
		 [[ '$(weights)' == 'stable=70 canary=30' && $(gen) == $g ]]"

# --- refusals ---
ctl set web nosuch=5
check "set of an unknown backend: exit 1 naming it" \
	bash -c "[[ $RC == 1 ]] && grep -q 'nosuch: no such backend' '$TMP/err'"
ctl set web stable=2000000
check "set of a weight out of range: exit 1 naming it" \
	bash -c "[[ $RC == 1 ]] && grep -q 'stable: weight 2000000: must be an integer 0..1000000' '$TMP/err'"
ctl switch web nosuch
check "switch to an unknown backend: exit 1 naming it" \
	bash -c "[[ $RC == 1 ]] && grep -q 'nosuch: no such backend' '$TMP/err'"
check "refusals changed nothing" expect "stable=70 canary=30 $g" "$(weights) $(gen)"
ctl set web
check "set without weights: usage, exit 2" expect 2 "$RC"
ctl --timeout soon get
check "--timeout of no duration: usage, exit 2" expect 2 "$RC"
ctl verdicts
check "verdicts in Kubernetes mode: exit 1, run it on the node" \
	bash -c "[[ $RC == 1 ]] && grep -q 'run it on the node with --socket' '$TMP/err'"

# --- the kubectl plugin ---
out=$(PATH=$BIN_DIR:$PATH kubectl kshift get 2>&1)
check "kubectl kshift get: the plugin link acts on the cluster" \
	bash -c "grep -qE '^default +web +stable +70' <<<'$out'"
fake_curl POST /api/v1/namespaces -H 'Content-Type: application/json' \
	-d '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"prod"}}' >/dev/null
manifest 10 >"$TMP/prod.yaml"
PATH=$BIN_DIR:$PATH kubectl kshift -n prod apply -f "$TMP/prod.yaml" >/dev/null 2>"$TMP/err"
PATH=$BIN_DIR:$PATH kubectl kshift -n prod set web stable=50 canary=50 >/dev/null 2>>"$TMP/err"
RC=$?
check "kubectl kshift -n prod set web stable=50 canary=50" \
	expect "0 stable=50 canary=50 stable=70 canary=30" "$RC $(weights web prod) $(weights)"
ctl get -A
check "get -A lists every namespace" \
	bash -c "grep -qE '^prod +web ' '$TMP/out' && grep -qE '^default +web ' '$TMP/out'"
out=$(PATH=$BIN_DIR:$PATH kubectl kshift --socket "$TMP/none.sock" get 2>&1)
check "kubectl kshift --socket: the plugin talks to a node's kshiftd instead" \
	bash -c "grep -q 'none.sock: .*is kshiftd running' <<<'$out'"
ctl --context fake-certs -n prod get web
check "--context picks the kubeconfig's context (client certificate)" \
	bash -c "[[ $RC == 0 ]] && grep -qE '^prod +web +stable +50' '$TMP/out'"
sed 's/namespace: default/namespace: prod/' "$KUBECONFIG" >"$TMP/prod.kubeconfig"
ctl --kubeconfig "$TMP/prod.kubeconfig" get
check "without -n, the context's namespace" \
	bash -c "[[ $RC == 0 ]] && grep -qE '^prod +web ' '$TMP/out' && ! grep -q '^default' '$TMP/out'"
manifest 10 "  namespace: default" >"$TMP/ns.yaml"
ctl -n prod apply -f "$TMP/ns.yaml"
check "apply: a document's namespace that -n contradicts is refused" \
	bash -c "[[ $RC == 1 ]] && grep -q 'metadata.namespace default does not match -n prod' '$TMP/err'"

# --- --wait ---
g=$(gen)
start=$(date +%s%N)
ctl set web stable=60 canary=40 --wait --timeout 1s
ms=$((($(date +%s%N) - start) / 1000000))
check "set --wait without a daemon: exit 1 after --timeout, saying no node reported" \
	bash -c "[[ $RC == 1 ]] && (($ms >= 900 && $ms < 5000)) &&
		 grep -q 'generation $((g + 1)) not programmed after .*no node has reported' '$TMP/err'"
fake_curl PATCH "$TS/web/status" -H 'Content-Type: application/merge-patch+json' \
	-d '{"status":{"observedGeneration":1,"nodes":{"programmed":1,"total":3}}}' >/dev/null
ctl set web stable=65 canary=35 --wait --timeout 500ms
check "set --wait with nodes behind: says how many nodes programmed it" \
	bash -c "[[ $RC == 1 ]] && grep -q '1 of 3 node(s) programmed it (status.observedGeneration 1)' '$TMP/err'"
fake_curl PATCH "$TS/web/status" -H 'Content-Type: application/merge-patch+json' \
	-d '{"status":{"observedGeneration":1000,"conditions":[{"type":"Accepted","status":"False","observedGeneration":1000,"reason":"Invalid","message":"spec.backends[0].service: web-v1: bad"}]}}' >/dev/null
ctl set web stable=66 canary=34 --wait --timeout 10s
check "set --wait stops at once when the daemons refuse the spec, with their message" \
	bash -c "[[ $RC == 1 ]] && grep -q 'not accepted: spec.backends\[0\].service: web-v1: bad' '$TMP/err'"
fake_curl PATCH "$TS/web/status" -H 'Content-Type: application/merge-patch+json' \
	-d '{"status":null}' >/dev/null
status_writer &
WRITER_PID=$!
ctl set web stable=10 canary=90 --wait --timeout 10s
check "set --wait returns once status says every node programmed it" \
	bash -c "[[ $RC == 0 ]] && grep -q 'programmed on 1 of 1 node(s)' '$TMP/out' &&
		 [[ '$(weights)' == 'stable=10 canary=90' ]]"
ctl switch web stable --wait --timeout 10s
check "switch --wait too" expect "0 stable=100 canary=0" "$RC $(weights)"
# a null is an unset field, for the parser and for the API alike
manifest 7 | sed 's/^spec:$/spec:\n  mirror: null/' >"$TMP/web7.yaml"
ctl apply -f "$TMP/web7.yaml" --wait --timeout 10s
check "apply --wait (a document with a null field) returns once programmed" \
	bash -c "[[ $RC == 0 ]] && grep -q 'configured' '$TMP/out' &&
		 grep -q 'programmed on 1 of 1 node(s)' '$TMP/out' &&
		 [[ '$(weights)' == 'stable=90 canary=7' ]]"
kill "$WRITER_PID" 2>/dev/null
wait "$WRITER_PID" 2>/dev/null
WRITER_PID=
ctl get web
check "get shows Programmed, the observed generation and the nodes" \
	bash -c "grep -qE '^default +web +stable +90 +92.8% +svc/web-v1 +True +$(gen)/$(gen) +1/1\$' '$TMP/out'"
fake_curl PATCH "$TS/web/status" -H 'Content-Type: application/merge-patch+json' \
	-d '{"status":{"conditions":[{"type":"ResolvedRefs","status":"False","reason":"BackendNotFound","message":"backends[1].service: web-v2: not found"}]}}' >/dev/null
ctl get web
check "get shows a False ResolvedRefs with its message" \
	stdout_has "default/web: ResolvedRefs False: BackendNotFound: backends[1].service: web-v2: not found"

# --- mirror ---
ctl mirror web canary --percent 10
check "mirror: spec.mirror set" expect "0 canary 10" "$RC $(field '"\(.spec.mirror.backend) \(.spec.mirror.percent)"')"
ctl mirror web --off
check "mirror --off: spec.mirror removed" expect "0 null" "$RC $(field .spec.mirror)"
ctl mirror web nosuch
check "mirror to an unknown backend: exit 1 naming it" \
	bash -c "[[ $RC == 1 ]] && grep -q 'nosuch: no such backend' '$TMP/err'"

# --- connection errors ---
sed -E 's#server: https://127.0.0.1:[0-9]+#server: https://127.0.0.1:1#' "$KUBECONFIG" >"$TMP/dead.kubeconfig"
ctl --kubeconfig "$TMP/dead.kubeconfig" get
check "no API server: exit 1 naming the server and the kubeconfig" \
	bash -c "[[ $RC == 1 ]] && grep -q 'https://127.0.0.1:1.*check the kubeconfig' '$TMP/err'"

# --- --timeout in socket mode: a daemon that takes the request and never answers ---
"$FAKE_PY" -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(4)
c = s.accept()[0]
time.sleep(10)' "$TMP/mute.sock" &
MUTE_PID=$!
for ((i = 0; i < 50; i++)); do [[ -S $TMP/mute.sock ]] && break; sleep 0.1; done
start=$(date +%s%N)
"$KSHIFTCTL" --socket "$TMP/mute.sock" --timeout 300ms get >"$TMP/out" 2>"$TMP/err"
RC=$?
ms=$((($(date +%s%N) - start) / 1000000))
kill "$MUTE_PID" 2>/dev/null
wait "$MUTE_PID" 2>/dev/null
check "socket mode: --timeout 300ms gives up on a daemon that never answers (${ms} ms)" \
	bash -c "[[ $RC == 1 ]] && (($ms < 2000)) && grep -q 'no answer within 300 ms' '$TMP/err'"

# --- delete ---
ctl delete web nope
check "delete NAME...: deletes, names the missing one, exit 1" \
	bash -c "[[ $RC == 1 ]] && grep -q 'default/nope: not found' '$TMP/err' &&
		 grep -q 'default/web deleted' '$TMP/out' &&
		 fake_curl GET '$TS/web' | grep -q NotFound"
ctl -n prod delete -f "$TMP/prod.yaml"
check "delete -f FILE" bash -c "[[ $RC == 0 ]] &&
	fake_curl GET /apis/kshift.dev/v1alpha1/namespaces/prod/trafficshifts/web | grep -q NotFound"

# --- with the real kshiftd ---
if ((EUID != 0)) || ! [[ -x $KSHIFTD ]]; then
	ok "node: # SKIP needs root and $KSHIFTD"
else
	NODE_NS=kse-k8sctl-$$
	ip netns add "$NODE_NS"
	while read -r line; do
		case $line in
		"ok - "*) ok "${line#ok - }" ;;
		"not ok - "*) not_ok "${line#not ok - }" ;;
		*) echo "$line" ;;
		esac
	done < <(KSHIFTCTL=$KSHIFTCTL KSHIFTD=$KSHIFTD ip netns exec "$NODE_NS" bash "$0" --node 2>&1)
	ip netns del "$NODE_NS"
	NODE_NS=
fi

echo "1..$TESTS"
((FAILS == 0))
