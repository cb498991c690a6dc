#!/usr/bin/env bash
# End to end: kshift's Kubernetes client (user/lib/kube*.c, driven by
# tools/ks-kube-dump) against the fake API server (tests/k8s/fakeapi.py) on
# 127.0.0.1. The store must converge on what the server holds, with nothing
# stale, through paged lists, watch events, an HTTP 410 on a re-watch, an
# ERROR 410 event in the stream, dropped streams and token rotation; and a
# retry storm must log one warning, not one per retry. Single requests work
# with a token, client certificate files, and inline base64 CA, certificate
# and key.
# Needs no root and no network namespace.
set -uo pipefail
KS_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../k8s/lib.sh
source "$KS_ROOT/tests/k8s/lib.sh"
DUMP=${KS_KUBE_DUMP:-$KS_ROOT/build/ks-kube-dump}

T=0
FAILS=0
ok() { T=$((T + 1)); echo "ok - $*"; }
not_ok() { T=$((T + 1)); FAILS=$((FAILS + 1)); echo "not ok - $*"; }
check() { local m=$1; shift; if "$@"; then ok "$m"; else not_ok "$m"; fi; }

for tool in curl openssl; do
	if ! command -v "$tool" >/dev/null; then
		echo "ok - # SKIP $tool not installed"
		echo "1..1"
		exit 0
	fi
done
if [[ ! -x $DUMP ]]; then
	echo "not ok - $DUMP not built (make)"
	echo "1..1"
	exit 1
fi

TMP=$(mktemp -d /tmp/ks-kclient-XXXXXX)
DUMP_PID=
cleanup() {
	[[ -n $DUMP_PID ]] && kill "$DUMP_PID" 2>/dev/null
	fake_stop
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1,200 Services (three pages of 500), slices of two of them, a shift and
# leases, one of which lacks the label the watcher selects on.
"$FAKE_PY" - "$TMP/data.json" <<'PY'
import json, sys
objs = [{"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": f"svc-{i:04d}", "namespace": "default"},
         "spec": {"ports": [{"port": 80}]}} for i in range(1200)]
for svc, n in (("svc-0001", 2), ("svc-0002", 1)):
    for j in range(n):
        objs.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                     "metadata": {"name": f"{svc}-{j}", "namespace": "default",
                                  "labels": {"kubernetes.io/service-name": svc}},
                     "addressType": "IPv4",
                     "endpoints": [{"addresses": [f"198.18.2.{j + 2}"]}]})
objs.append({"apiVersion": "kshift.dev/v1alpha1", "kind": "TrafficShift",
             "metadata": {"name": "web", "namespace": "default"},
             "spec": {"frontend": {"service": "svc-0001"},
                      "backends": [{"name": "a", "service": "svc-0002", "weight": 1}]}})
for name, labelled in (("node-1", True), ("node-2", True), ("other", False)):
    md = {"name": name, "namespace": "default"}
    if labelled:
        md["labels"] = {"app.kubernetes.io/name": "kshift"}
    objs.append({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": md,
                 "spec": {"holderIdentity": name}})
json.dump(objs, open(sys.argv[1], "w"))
PY

if ! fake_start "$TMP/fake" --data "$TMP/data.json" --bookmark-interval 0.5; then
	echo "not ok - the fake API server starts"
	echo "1..1"
	exit 1
fi

# api METHOD PATH [JSON]: a request as the admin, whose token never rotates;
# a refusal is a failed test of its own, so no check passes on a no-op
api() {
	local ctype=application/json code
	[[ $1 == PATCH ]] && ctype=application/merge-patch+json
	code=$(curl -sS -o "$TMP/api.out" -w '%{http_code}' --cacert "$FAKE_CA" \
		-H "Authorization: Bearer $FAKE_ADMIN_TOKEN" -H "Content-Type: $ctype" \
		-X "$1" ${3:+-d "$3"} "$FAKE_URL$2")
	if [[ $code != 2?? ]]; then
		not_ok "$1 $2: HTTP $code: $(head -c 300 "$TMP/api.out")"
		return 1
	fi
}

# truth: what the server holds, in the state file's format
truth() {
	"$FAKE_PY" - "$FAKE_URL" "$FAKE_CA" "$FAKE_ADMIN_TOKEN" <<'PY'
import json, ssl, sys, urllib.request
url, ca, tok = sys.argv[1:]
ctx = ssl.create_default_context(cafile=ca)
paths = {"trafficshifts": "/apis/kshift.dev/v1alpha1/trafficshifts",
         "services": "/api/v1/services",
         "endpointslices": "/apis/discovery.k8s.io/v1/endpointslices",
         "leases": "/apis/coordination.k8s.io/v1/namespaces/default/leases"
                   "?labelSelector=app.kubernetes.io%2Fname%3Dkshift"}
lines = []
for kind, path in paths.items():
    req = urllib.request.Request(url + path, headers={"Authorization": "Bearer " + tok})
    for o in json.load(urllib.request.urlopen(req, context=ctx))["items"]:
        md = o["metadata"]
        svc = (md.get("labels") or {}).get("kubernetes.io/service-name")
        lines.append(f"{kind} {md.get('namespace', '')}/{md['name']} {md['resourceVersion']}"
                     + (f" {svc}" if svc else ""))
print("\n".join(sorted(lines)))
PY
}

# converged [SECONDS]: the dump's store equals the server's, every kind synced
ALL_SYNCED="synced trafficshifts services endpointslices leases"
converged() {
	local i want
	for ((i = 0; i < ${1:-15} * 5; i++)); do
		want=$(truth)
		if [[ -s $TMP/state ]] &&
			[[ $(head -n1 "$TMP/state") == "$ALL_SYNCED" ]] &&
			[[ $(tail -n +2 "$TMP/state") == "$want" ]]; then
			return 0
		fi
		sleep 0.2
	done
	echo "# store and server differ:"
	diff <(tail -n +2 "$TMP/state" 2>/dev/null) <(echo "$want") | head -20 | sed 's/^/#   /'
	return 1
}

count() { grep -cE "$1" "$2"; }

"$DUMP" --context fake-tokenfile --lease-namespace default --state "$TMP/state" \
	>"$TMP/changes" 2>"$TMP/dump.err" &
DUMP_PID=$!

check "the first lists (services in 3 pages) fill the store" converged 20
check "the services list was paged with limit and continue" \
	[ "$(grep -cE 'GET /api/v1/services\?limit=500&continue=' "$FAKE_DIR/requests.log")" -ge 2 ]
check "an unlabelled lease stays out" bash -c "! grep -q ' default/other ' '$TMP/state'"
check "the first list reports every object as changed" \
	[ "$(count '^services ' "$TMP/changes")" -eq 1200 ]

# watch events: add, modify (a slice moves to another service), delete
api POST /api/v1/namespaces/default/services \
	'{"apiVersion":"v1","kind":"Service","metadata":{"name":"new"},
	  "spec":{"ports":[{"port":81}]}}'
api PATCH /apis/discovery.k8s.io/v1/namespaces/default/endpointslices/svc-0001-1 \
	'{"metadata":{"labels":{"kubernetes.io/service-name":"svc-0002"}}}'
api DELETE /apis/kshift.dev/v1alpha1/namespaces/default/trafficshifts/web
check "watch events: added, modified and deleted objects arrive" converged
check "a slice that moved is a change for both services" \
	bash -c "grep -q '^endpointslices default/svc-0001-1 svc-0001$' '$TMP/changes' &&
		 grep -q '^endpointslices default/svc-0001-1 svc-0002$' '$TMP/changes'"

# a dropped stream resumes from the last resourceVersion, without a relist
lists=$(count 'listed' "$TMP/dump.err")
fake_ctl drop-watches >/dev/null
sleep 1
api DELETE /api/v1/namespaces/default/services/svc-0100
check "after dropped streams the store converges" converged
check "dropped streams resume without relisting" \
	[ "$(count 'listed' "$TMP/dump.err")" -eq "$lists" ]

# HTTP 410 on the re-watch: relist; what went meanwhile is deleted
fake_ctl gone resource=services count=1 >/dev/null
api DELETE /api/v1/namespaces/default/services/svc-0200
fake_ctl drop-watches >/dev/null
sleep 1
api DELETE /api/v1/namespaces/default/services/svc-0201
check "HTTP 410 on a watch: relisted, converged" converged
check "HTTP 410 on a watch: the relist is logged" \
	grep -q 'kube: services: resourceVersion .* too old, relisting' "$TMP/dump.err"

# ERROR 410 in the stream: every kind relists
relists=$(count 'too old, relisting' "$TMP/dump.err")
fake_ctl error-410 >/dev/null
api POST /api/v1/namespaces/default/services \
	'{"apiVersion":"v1","kind":"Service","metadata":{"name":"after-410"}}'
check "ERROR 410 event: relisted, converged" converged
check "ERROR 410 event: every kind relisted" \
	[ "$(count 'too old, relisting' "$TMP/dump.err")" -ge $((relists + 4)) ]

# one request with each kind of credential: token, client certificate
# files, and all of it inline as base64 data (curl's in-memory blobs)
get_ok() { "$DUMP" "$@" --request GET /api/v1/namespaces/default/services/new 2>&1 |
	head -n1 | grep -qx 200; }
check "a request with a token" get_ok --context fake
check "a request with a client certificate and key from files" get_ok --context fake-certs
b64() { base64 -w0 "$1"; }
cat >"$TMP/inline.kubeconfig" <<EOF
clusters:
- name: c
  cluster:
    server: $FAKE_URL
    certificate-authority-data: $(b64 "$FAKE_DIR/ca.crt")
users:
- name: u
  user:
    client-certificate-data: $(b64 "$FAKE_DIR/client.crt")
    client-key-data: $(b64 "$FAKE_DIR/client.key")
contexts:
- {name: x, context: {cluster: c, user: u}}
current-context: x
EOF
check "a request with CA, certificate and key inline as base64" \
	get_ok --kubeconfig "$TMP/inline.kubeconfig"
sed -i '/certificate-authority-data/d' "$TMP/inline.kubeconfig"
check "a server the system CAs do not know is refused" \
	bash -c "! '$DUMP' --kubeconfig '$TMP/inline.kubeconfig' --request GET /version 2>&1 |
		grep -q '^200'"

# token rotation: the server stops taking the old token before the file
# changes, so reconnects fail (401) until it does; one warning per kind
old=$(head -n1 "$FAKE_DIR/tokens")
new=user-rotated-$RANDOM$RANDOM
echo "$new" >"$FAKE_DIR/tokens"
fake_ctl drop-watches >/dev/null
sleep 4
echo "$new" >"$FAKE_DIR/token.tmp" && mv "$FAKE_DIR/token.tmp" "$FAKE_DIR/token"
api POST /api/v1/namespaces/default/services \
	'{"apiVersion":"v1","kind":"Service","metadata":{"name":"after-rotation"}}'
check "token rotation: reconnected with the new token, converged" converged 40
warn401=$(count 'HTTP 401' "$TMP/dump.err")
check "a retry storm logs once per kind ($warn401 lines for 4 kinds)" \
	[ "$warn401" -ge 1 -a "$warn401" -le 4 ]
check "the old token is refused after rotation" \
	[ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$FAKE_CA" \
		-H "Authorization: Bearer $old" "$FAKE_URL/api/v1/services")" = 401 ]
check "the failure's end is logged" grep -q 'watching again' "$TMP/dump.err"

# stopping is prompt even with every thread in a watch
start=$(date +%s%N)
kill -TERM "$DUMP_PID"
wait "$DUMP_PID"
rc=$?
DUMP_PID=
ms=$((($(date +%s%N) - start) / 1000000))
check "SIGTERM stops the watcher threads promptly (${ms} ms, status $rc)" \
	[ "$rc" -eq 0 -a "$ms" -lt 3000 ]

if ((FAILS)); then
	sed 's/^/# dump: /' "$TMP/dump.err" | tail -40
fi
echo "1..$T"
((FAILS == 0))
