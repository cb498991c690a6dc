#!/usr/bin/env bash
# kshiftd --kubernetes end to end: a fake API server (tests/k8s/fakeapi.py)
# holds Services, EndpointSlices and a TrafficShift; kshiftd on the node
# watches them and steers real connections; a second kshiftd on a second
# node joins, and exactly one of them writes status.
#
#   node ns: fake API on 198.18.99.1 (api0), kshiftd #1, the test network
#   node2 ns: eth0 198.18.99.2 --- api0 of the node; kshiftd #2
#
# The API network is a veth of its own in 198.18.99.0/24, so both daemons
# reach the fake and nothing leaves the test's namespaces.
source "$(dirname "$0")/lib.sh"
source "$KS_ROOT/tests/k8s/lib.sh"
ks_init k8s

API=198.18.99.1
LEASE_NS=kshift-system

# kubectl and curl run where the fake listens: in the node namespace
kubectl() { ip netns exec "$KS_NODE" /usr/bin/kubectl --server "$FAKE_URL" "$@"; }
curl() { ip netns exec "$KS_NODE" /usr/bin/curl "$@"; }

# service NAME CLUSTER_IP...: a Service whose port 80 ("http") targets the
# pods' port named "web"
service() {
	local name=$1 ips
	shift
	ips=$(printf '"%s",' "$@")
	cat <<YAML
---
apiVersion: v1
kind: Service
metadata: {name: $name, namespace: default}
spec:
  clusterIP: $1
  clusterIPs: [${ips%,}]
  ports: [{name: http, port: 80, protocol: TCP, targetPort: web}]
YAML
}

# slice NAME SERVICE IPv4|IPv6 ADDR[=CONDITIONS]...: an EndpointSlice whose
# "http" port is 8080; CONDITIONS as YAML flow, e.g. "{ready: false}"
slice() {
	local name=$1 svc=$2 family=$3 ep
	shift 3
	cat <<YAML
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: $name
  namespace: default
  labels: {kubernetes.io/service-name: $svc}
addressType: $family
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
YAML
	for ep in "$@"; do
		echo "- addresses: [\"${ep%%=*}\"]"
		[[ $ep == *=* ]] && echo "  conditions: ${ep#*=}"
	done
}

# objects: the Services and EndpointSlices of two versions, and the shift
objects() {
	printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n' "$LEASE_NS"
	service web 198.18.100.1 2001:2:0:100::1
	service web-v1 198.18.100.11
	service web-v2 198.18.100.12
	# two slices for web-v1, one address in both: aggregated, de-duplicated
	slice web-v1-a web-v1 IPv4 "198.18.2.2={ready: true}" 198.18.2.3
	slice web-v1-b web-v1 IPv4 "198.18.2.2={ready: true, serving: true, terminating: false}"
	slice web-v1-v6 web-v1 IPv6 2001:2:0:2::2 2001:2:0:2::3
	slice web-v2-a web-v2 IPv4 "198.18.3.2={ready: true}"
	slice web-v2-v6 web-v2 IPv6 2001:2:0:3::2
	cat <<'YAML'
---
apiVersion: kshift.dev/v1alpha1
kind: TrafficShift
metadata: {name: web, namespace: default}
spec:
  frontend:
    service: web
  backends:
  - {name: stable, service: web-v1, weight: 50}
  - {name: canary, service: web-v2, weight: 50}
YAML
}

# slice_v1a READY2 SERVING2 TERMINATING2 READY3: web-v1-a with the
# conditions of 198.18.2.2 and 198.18.2.3 (web-v1-b is deleted first)
slice_v1a() {
	slice web-v1-a web-v1 IPv4 "198.18.2.2={ready: $1, serving: $2, terminating: $3}" \
		"198.18.2.3={ready: $4}"
}

# ts_json: the TrafficShift as the API has it
ts_json() {
	fake_curl GET /apis/kshift.dev/v1alpha1/namespaces/default/trafficshifts/web
}

# status_is EXPR: a Python expression over the TrafficShift (d) holds
status_is() {
	jq_ok "$(ts_json)" "$1"
}

# split_v4 N: N new connections through the Service's IPv4 ClusterIP
split_v4() {
	ks_client split http://198.18.100.1/ "$1" --max-failures 3
}

# only_to RES ENDPOINTS...: every connection of RES reached one of these
# "NAME ADDR" endpoints, and none failed
only_to() {
	local res=$1
	shift
	jq_ok "$res" "d['failures'] == 0 and set(d['endpoints']) <= set('''$*'''.split(','))"
}

# elapsed_ms START: milliseconds since START (an EPOCHREALTIME)
elapsed_ms() {
	echo $(((${EPOCHREALTIME//[!0-9]/} - ${1//[!0-9]/}) / 1000))
}

run_mode() {
	local mode=$1 res t0 ms kdir k2
	ks_setup "$mode" stable:198.18.2.2 stable:198.18.2.3 canary:198.18.3.2 &&
		ks_httpd_all 8080 || return
	kdir=$KS_TMP/api k2=$KS_TMP/node2

	# the API network, and a second node on it
	KS_NSES+=("$KS_PFX-node2")
	tn_ns_add "$KS_PFX-node2" &&
		ip -n "$KS_NODE" link add api0 type veth peer name eth0 netns "$KS_PFX-node2" &&
		ip -n "$KS_NODE" addr add "$API/24" dev api0 &&
		ip -n "$KS_NODE" link set api0 up &&
		ip -n "$KS_PFX-node2" addr add 198.18.99.2/24 dev eth0 &&
		ip -n "$KS_PFX-node2" link set eth0 up ||
		{ not_ok "setup: the API network"; return 1; }

	# the fake API server, in the node namespace
	printf '#!/bin/sh\nexec ip netns exec %s %s "$@"\n' "$KS_NODE" "$KS_PY" >"$KS_TMP/py-in-node"
	chmod +x "$KS_TMP/py-in-node"
	FAKE_PY=$KS_TMP/py-in-node fake_start "$kdir" --host "$API" --san "$API" \
		--bookmark-interval 1 || { not_ok "setup: the fake API server starts"; return 1; }
	FAKE_URL=https://$API:$(<"$kdir/port")
	objects | kubectl apply -f - >"$KS_TMP/apply.out" 2>&1 ||
		{ not_ok "setup: kubectl apply of the objects"; diag <"$KS_TMP/apply.out"; return 1; }

	# kshiftd with the token-file context, so a rotated token is picked up
	ks_daemon_start --kubernetes --kubeconfig "$kdir/kubeconfig" --context fake-tokenfile \
		--apiserver "$FAKE_URL" --node-name node1 --lease-namespace "$LEASE_NS" \
		--metrics-addr 127.0.0.1:9402 || return
	check "the shift from the API is programmed" \
		ks_until 10 0.2 ks_weights_are web "stable=50 canary=50"
	ks_probe http://198.18.100.1/ || return

	res=$(split_v4 60)
	check "IPv4 ClusterIP: 60 connections split over both versions ($res)" \
		jq_ok "$res" "d['failures'] == 0 and d['backends'].get('stable', 0) >= 10 and d['backends'].get('canary', 0) >= 10"
	check "slices aggregated: both stable endpoints serve ($res)" \
		jq_ok "$res" "'stable 198.18.2.2' in d['endpoints'] and 'stable 198.18.2.3' in d['endpoints']"
	res=$(ks_client split "http://[2001:2:0:100::1]/" 40 --max-failures 3)
	check "IPv6 ClusterIP: 40 connections split over both versions ($res)" \
		jq_ok "$res" "d['failures'] == 0 and d['backends'].get('stable', 0) >= 5 and d['backends'].get('canary', 0) >= 5"
	check "/readyz says ready" \
		ks_until 5 0.2 in_ns "$KS_NODE" /usr/bin/curl -sf http://127.0.0.1:9402/readyz -o /dev/null

	# status, from the one writer
	check "status: Programmed on 1/1 nodes at the current generation" \
		ks_until 10 0.2 status_is "d['status']['observedGeneration'] == d['metadata']['generation'] and d['status']['nodes']['summary'] == '1/1' and [c['status'] for c in d['status']['conditions'] if c['type'] == 'Programmed'] == ['True']"

	# a weight change through the API, as kubectl kshift makes it
	t0=$EPOCHREALTIME
	kubectl patch ts web --type merge \
		-p '{"spec":{"backends":[{"name":"stable","service":"web-v1","weight":100},{"name":"canary","service":"web-v2","weight":0}]}}' \
		>/dev/null
	if ks_until 5 0.05 ks_weights_are web "stable=100 canary=0"; then
		ms=$(elapsed_ms "$t0")
		ok "a patch at the API is programmed on the node (${ms} ms)"
		check "... within 1 s of the patch (${ms} ms)" test "$ms" -le 1000
	else
		not_ok "a patch at the API is programmed on the node"
	fi
	res=$(split_v4 30)
	check "100/0: every connection to stable ($res)" \
		only_to "$res" "stable 198.18.2.2,stable 198.18.2.3"

	# endpoint conditions, as kube-proxy reads them
	fake_curl DELETE /apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-v1-b >/dev/null
	slice_v1a true true false false | kubectl apply -f - >/dev/null
	t0=$EPOCHREALTIME
	sleep 1
	res=$(split_v4 30)
	check "not ready: 198.18.2.3 gets no new connection 1 s after the change ($res)" \
		only_to "$res" "stable 198.18.2.2"

	ks_client_bg "$KS_TMP/ka.json" keepalive http://198.18.100.1/ 6 \
		--ready-file "$KS_TMP/ka.ready" --go-file "$KS_TMP/ka.go"
	local ka_pid=$KS_LAST_PID
	ks_wait_file "$KS_TMP/ka.ready" 10
	slice_v1a false true true true | kubectl apply -f - >/dev/null
	sleep 1
	res=$(split_v4 30)
	check "terminating: 198.18.2.2 gets no new connection ($res)" \
		only_to "$res" "stable 198.18.2.3"
	touch "$KS_TMP/ka.go"
	wait "$ka_pid"
	res=$(<"$KS_TMP/ka.json")
	check "terminating: its 6 open connections keep working on it ($(jq_py "$res" "{k: d[k] for k in ('kept', 'errors', 'first')}"))" \
		jq_ok "$res" "d['kept'] == 6 and d['first'] == {'stable': 6}"
	slice_v1a false true true false | kubectl apply -f - >/dev/null
	sleep 1
	res=$(split_v4 20)
	check "nothing ready: the serving+terminating endpoint takes new flows ($res)" \
		only_to "$res" "stable 198.18.2.2"
	slice_v1a true true false true | kubectl apply -f - >/dev/null

	# a cut stream, an expired resourceVersion and a rotated token: the
	# node converges and nothing stale survives
	fake_ctl drop-watches >/dev/null
	kubectl patch ts web --type merge \
		-p '{"spec":{"backends":[{"name":"stable","service":"web-v1","weight":0},{"name":"canary","service":"web-v2","weight":100}]}}' \
		>/dev/null
	check "after a cut watch stream the node converges" \
		ks_until 10 0.1 ks_weights_are web "stable=0 canary=100"

	local lists_before lists_after
	lists_before=$(fake_ctl counters | jq_py "$(cat)" "d.get('list endpointslices', 0)")
	fake_ctl error-410 >/dev/null
	fake_curl DELETE /apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-v2-a >/dev/null
	fake_ctl compact >/dev/null
	check "410: the slice deleted meanwhile is gone from the node (canary empty → rejected)" \
		ks_until 10 0.2 bash -c "! ip netns exec $KS_CLIENT $KS_PY $KS_E2E/client.py split http://198.18.100.1/ 3 | grep -q '\"ok\": [1-9]'"
	lists_after=$(fake_ctl counters | jq_py "$(cat)" "d.get('list endpointslices', 0)")
	check "410: the watcher listed EndpointSlices again ($lists_before → $lists_after)" \
		test "$lists_after" -gt "$lists_before"

	local newtok
	newtok=rotated-$RANDOM$RANDOM
	echo "$newtok" >"$kdir/token"
	echo "$newtok" >"$kdir/tokens"
	FAKE_TOKEN=$newtok
	fake_ctl drop-watches >/dev/null
	objects | kubectl --token "$newtok" apply -f - >/dev/null 2>&1
	check "token rotated: the node re-reads it and converges (canary back)" \
		ks_until 15 0.2 bash -c "ip netns exec $KS_CLIENT $KS_PY $KS_E2E/client.py split http://198.18.100.1/ 3 | grep -q '\"canary\"'"

	# a second node
	ip netns exec "$KS_PFX-node2" "$KSHIFTD" --iface eth0 --mode "$mode" \
		--socket "$k2.sock" --pin-path "$KS_BPFFS/kshift2" --state-dir "$k2.state" --kubernetes \
		--kubeconfig "$kdir/kubeconfig" --context fake-tokenfile --apiserver "$FAKE_URL" \
		--node-name node2 --lease-namespace "$LEASE_NS" >>"$k2.log" 2>&1 &
	KS_BG_PIDS+=($!)
	check "node2 programs the shift too" \
		ks_until 15 0.2 bash -c "$KSHIFTCTL --socket $k2.sock get web -o json 2>/dev/null | grep -q canary"
	if ! ks_until 15 0.2 status_is "d['status']['nodes']['summary'] == '2/2'"; then
		not_ok "status counts both nodes: 2/2 programmed"
		{
			echo "--- the TrafficShift"
			ts_json
			echo "--- the Leases"
			fake_curl GET "/apis/coordination.k8s.io/v1/namespaces/$LEASE_NS/leases"
		} | head -c 8000 | diag
	else
		ok "status counts both nodes: 2/2 programmed"
	fi
	check "exactly one daemon is the status writer" \
		test "$(cat "$KS_LOG" "$k2.log" | grep -c 'status writer')" -eq 1
	diag <"$k2.log"
}

if ! command -v kubectl >/dev/null; then
	echo "ok - # SKIP kubectl is not installed"
	ks_done
fi
for mode in tc; do
	run_mode "$mode"
	fake_stop
	ks_mode_end
done
ks_done
