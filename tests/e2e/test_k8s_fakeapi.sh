#!/usr/bin/env bash
# End to end: the fake Kubernetes API server (tests/k8s/fakeapi.py) is
# faithful enough that the real kubectl, and curl as libcurl clients do,
# work against it: discovery, create/apply/patch with generations, the
# status subresource, paging, watches (kubectl get -w, 410 on a compacted
# resourceVersion, injected ERROR events and dropped streams), token
# rotation, client certificates, and kubectl apply retrying an injected 409.
# Needs no root and no network namespace: the fake listens on 127.0.0.1.
set -uo pipefail
KS_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../k8s/lib.sh
source "$KS_ROOT/tests/k8s/lib.sh"

T=0
FAILS=0
ok() { T=$((T + 1)); echo "ok - $*"; }
not_ok() { T=$((T + 1)); FAILS=$((FAILS + 1)); echo "not ok - $*"; }
check() { local m=$1; shift; if "$@"; then ok "$m"; else not_ok "$m"; fi; }
diag() { sed 's/^/# /'; }

for tool in kubectl curl openssl; do
	if ! command -v "$tool" >/dev/null; then
		echo "ok - # SKIP $tool not installed"
		echo "1..1"
		exit 0
	fi
done

TMP=$(mktemp -d /tmp/ks-fakeapi-XXXXXX)
BG=()
cleanup() {
	local p
	for p in "${BG[@]}"; do kill "$p" 2>/dev/null; done
	fake_stop
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# jf JSON EXPR: prints a Python expression over d, the parsed JSON, and m,
# s, st, its metadata, spec and status (a tuple as its items separated by
# spaces); jt JSON EXPR: true when the expression is
JSON_PY='import json, sys
d = json.loads(sys.argv[1])
m, s, st = (d.get(k) or {} for k in ("metadata", "spec", "status"))
r = eval(sys.argv[2])'
jf() { "$FAKE_PY" -c "$JSON_PY"'
print(" ".join(map(str, r)) if isinstance(r, tuple) else r)' "$1" "$2"; }
jt() { "$FAKE_PY" -c "$JSON_PY"'
sys.exit(not r)' "$1" "$2"; }
# web EXPR: jf over the TrafficShift web as kubectl gets it
web() { jf "$(fake_kubectl get ts web -o json)" "$1"; }
# has_all TEXT PATTERN...: every extended regex PATTERN matches a line of TEXT
has_all() {
	local text=$1 p
	shift
	for p in "$@"; do grep -Eq -- "$p" <<<"$text" || return 1; done
}
# expect WANT GOT MSG: ok when equal, else not ok with both
expect() {
	if [[ $1 == "$2" ]]; then ok "$3"; else not_ok "$3"; echo "want: $1, got: $2" | diag; fi
}
# wait_for SECONDS COMMAND...: until COMMAND succeeds
wait_for() {
	local n=$(($1 * 10))
	shift
	while ((n-- > 0)); do "$@" && return 0; sleep 0.1; done
	return 1
}
TS=/apis/kshift.dev/v1alpha1/namespaces/default/trafficshifts
MERGE=(-H 'Content-Type: application/merge-patch+json')
code() { fake_curl "$@" -o "$TMP/body" -w '%{http_code}'; }
# events FILE: "TYPE NAME" for each event of a watch stream
events() {
	"$FAKE_PY" -c 'import json, sys
for ln in (ln for ln in open(sys.argv[1]) if ln.startswith("{")):
    e = json.loads(ln)
    print(e["type"], e["object"]["metadata"].get("name", "-"))' "$1"
}

if ! fake_start "$TMP/api" --bookmark-interval 0.5; then
	not_ok "the fake API server starts"
	echo "1..$T"
	exit 1
fi
ok "the fake API server starts on $FAKE_URL"

# --- discovery ----------------------------------------------------------------
out=$(fake_kubectl version 2>&1)
check "kubectl version reaches the server" grep -q 'Server Version: v1.32' <<<"$out"
out=$(fake_kubectl api-resources 2>&1)
check "kubectl api-resources lists trafficshifts (ts) in kshift.dev/v1alpha1" \
	grep -Eq '^trafficshifts +ts +kshift.dev/v1alpha1 +true +TrafficShift' <<<"$out"
check "kubectl api-resources lists services, endpointslices and leases" \
	has_all "$out" "^services " "^endpointslices " "^leases "

# --- create, get, apply, patch ---------------------------------------------------
M=$TMP/m
mkdir -p "$M"
cat >"$M/svc.yaml" <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: web, labels: {app: web}}
spec:
  clusterIP: 198.18.100.1
  ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-v1-abcde
  labels: {kubernetes.io/service-name: web-v1}
addressType: IPv4
endpoints:
- addresses: ["198.18.2.2"]
  conditions: {ready: true}
ports: [{name: http, port: 8080, protocol: TCP}]
EOF
# ts WEIGHT: the TrafficShift "web", stable at WEIGHT, canary at 10
ts() {
	cat <<EOF
apiVersion: kshift.dev/v1alpha1
kind: TrafficShift
metadata:
  name: web
  namespace: default
spec:
  frontend:
    service: web
    ports:
    - {port: 80, protocol: TCP}
  backends:
  - {name: stable, service: web-v1, weight: $1}
  - {name: canary, service: web-v2, weight: 10}
EOF
}
ts 90 >"$M/ts1.yaml"
ts 75 >"$M/ts2.yaml"
out=$(fake_kubectl create -f "$M/svc.yaml" -f "$M/ts1.yaml" 2>&1)
check "kubectl create -f a Service, an EndpointSlice and a TrafficShift" \
	has_all "$out" "service/web created" "endpointslice.discovery.k8s.io/web-v1-abcde created" \
	"trafficshift.kshift.dev/web created" || diag <<<"$out"
out=$(fake_kubectl create -f "$M/ts1.yaml" 2>&1)
check "creating it again is refused: AlreadyExists" grep -q AlreadyExists <<<"$out"
out=$(fake_kubectl get ts 2>&1)
check "kubectl get ts lists web" grep -Eq '^web +[0-9]+s' <<<"$out"
expect "1 90 default" "$(web 'm["generation"], s["backends"][0]["weight"], m["namespace"]')" \
	"kubectl get ts web -o json: generation 1, the spec as created"
check "the object has uid, creationTimestamp and resourceVersion" \
	jt "$(fake_kubectl get ts web -o json)" \
	'all(m.get(k) for k in ("uid", "creationTimestamp", "resourceVersion"))'

fake_kubectl apply -f "$M/ts2.yaml" >"$TMP/out" 2>&1
expect "2 75" "$(web 'm["generation"], s["backends"][0]["weight"]')" \
	"kubectl apply -f of a changed spec: generation 2"
rv=$(web 'm["resourceVersion"]')
out=$(fake_kubectl apply -f "$M/ts2.yaml" 2>&1)
check "kubectl apply -f of the same file again: unchanged" grep -q "web unchanged" <<<"$out"
expect "2 $rv" "$(web 'm["generation"], m["resourceVersion"]')" \
	"... generation and resourceVersion stay"
sed -i 's/targetPort: 8080/targetPort: 8081/' "$M/svc.yaml"
fake_kubectl apply -f "$M/svc.yaml" >/dev/null 2>&1
expect "8081 80" "$(jf "$(fake_kubectl get svc web -o json)" \
	's["ports"][0]["targetPort"], s["ports"][0]["port"]')" \
	"kubectl apply of a Service (strategic merge patch) changes its port"

out=$(fake_kubectl patch ts web --type merge -p '{"spec":{"affinity":"client"}}' 2>&1)
expect "client 3" "$(web 's["affinity"], m["generation"]')" \
	"kubectl patch --type merge: spec changed, generation 3"
c=$(code PATCH "$TS/web" "${MERGE[@]}" \
	-d '{"metadata":{"resourceVersion":"1"},"spec":{"affinity":"connection"}}')
expect "409 Conflict" "$c $(jf "$(<"$TMP/body")" 'd["reason"]')" \
	"a merge patch with a stale metadata.resourceVersion: 409 Conflict (Status)"
rv=$(web 'm["resourceVersion"]')
c=$(code PATCH "$TS/web" "${MERGE[@]}" \
	-d "{\"metadata\":{\"resourceVersion\":\"$rv\",\"labels\":{\"tier\":\"a\"}}}")
expect "200" "$c" "... with the current one: 200"

# --- kubectl get -w -----------------------------------------------------------------
timeout 20 kubectl get ts -w --no-headers \
	-o custom-columns=NAME:.metadata.name,W:.spec.backends[0].weight >"$TMP/watch.out" 2>&1 &
BG+=($!)
if wait_for 10 grep -q "^web  *75" "$TMP/watch.out"; then
	fake_kubectl patch ts web --type merge \
		-p '{"spec":{"backends":[{"name":"stable","weight":60}]}}' >/dev/null
	check "kubectl get ts -w prints the object, then a change made meanwhile" \
		wait_for 10 grep -q "^web  *60" "$TMP/watch.out"
else
	not_ok "kubectl get ts -w prints the object"
fi
kill "${BG[-1]}" 2>/dev/null
diag <"$TMP/watch.out"

# --- the status subresource -----------------------------------------------------------
gen=$(web 'm["generation"]')
c=$(code PATCH "$TS/web/status" "${MERGE[@]}" \
	-d '{"status":{"observedGeneration":4},"spec":{"affinity":"x"}}')
expect "200 4 $gen client" "$c $(web 'st["observedGeneration"], m["generation"], s["affinity"]')" \
	"PATCH .../status changes status, neither the spec nor the generation"
c=$(code PATCH "$TS/web" "${MERGE[@]}" \
	-d '{"spec":{"affinity":"connection"},"status":{"observedGeneration":99}}')
expect "200 4 $((gen + 1)) connection" \
	"$c $(web 'st["observedGeneration"], m["generation"], s["affinity"]')" \
	"a spec change through the main resource bumps generation, leaves status alone"
c=$(code PUT "$TS/web/status" -H 'Content-Type: application/json' \
	-d "$(jf "$(fake_curl GET "$TS/web")" \
	'json.dumps({**d, "status": {"observedGeneration": 5}})')")
expect "200 5" "$c $(web 'st["observedGeneration"]')" "PUT .../status"

# --- paging and selectors ---------------------------------------------------------------
for i in 1 2 3 4; do ts 1 | sed "s/name: web\$/name: page$i/"; echo ---; done >"$M/more.yaml"
fake_kubectl create -f "$M/more.yaml" >/dev/null 2>&1
p1=$(fake_curl GET "$TS?limit=2")
cont=$(jf "$p1" 'd["metadata"].get("continue", "")')
names=$(jf "$p1" '" ".join(i["metadata"]["name"] for i in d["items"])')
check "a list with limit=2 of 5: 2 items, metadata.continue, remainingItemCount 3" \
	jt "$p1" 'len(d["items"]) == 2 and m["remainingItemCount"] == 3 and m["continue"]'
fake_kubectl patch ts page4 --type merge -p '{"metadata":{"labels":{"tier":"b"}}}' >/dev/null
pages=1
while [[ -n $cont ]] && ((pages < 10)); do
	p=$(fake_curl GET "$TS?limit=2&continue=$cont")
	names+=" $(jf "$p" '" ".join(i["metadata"]["name"] for i in d["items"])')"
	cont=$(jf "$p" 'd["metadata"].get("continue", "")')
	pages=$((pages + 1))
done
expect "3: page1 page2 page3 page4 web" "$pages: $(tr ' ' '\n' <<<"$names" | sort | xargs)" \
	"following continue gives the rest in 3 pages, nothing twice"
expect "page4 web" "$(fake_kubectl get ts -l 'tier in (a,b)' -o name | sed 's|.*/||' | xargs)" \
	"kubectl get -l 'tier in (a,b)' (labelSelector)"
out=$(fake_kubectl get ts --field-selector metadata.name=page2 -o name)
expect "page2" "${out##*/}" \
	"kubectl get --field-selector metadata.name=page2"

# --- watches: 410, injected faults -----------------------------------------------------------
rv=$(jf "$(fake_curl GET "$TS")" 'd["metadata"]["resourceVersion"]')
out=$(fake_curl GET "$TS?watch=1&resourceVersion=$rv&timeoutSeconds=1" -w ' %{http_code}')
check "a watch from the list's resourceVersion: 200, ends after timeoutSeconds" \
	grep -q ' 200$' <<<"$out"
out=$(fake_curl GET "$TS?watch=1&resourceVersion=$rv&allowWatchBookmarks=true&timeoutSeconds=2")
check "allowWatchBookmarks: BOOKMARK events with the resourceVersion" \
	grep -q "\"type\": \"BOOKMARK\".*\"resourceVersion\": \"$rv\"" <<<"$out"
fake_ctl compact >/dev/null
c=$(code GET "$TS?watch=1&resourceVersion=2")
expect "410 Expired" "$c $(jf "$(<"$TMP/body")" 'd["reason"]')" \
	"a watch from an old, compacted resourceVersion: HTTP 410 Expired"
rv=$(jf "$(fake_curl GET "$TS")" 'd["metadata"]["resourceVersion"]')
fake_ctl gone resource=trafficshifts >/dev/null
c1=$(code GET "$TS?watch=1&resourceVersion=$rv&timeoutSeconds=1")
c2=$(code GET "$TS?watch=1&resourceVersion=$rv&timeoutSeconds=1")
expect "410 200" "$c1 $c2" "an injected 410 answers the next watch only"

fake_curl GET "$TS?watch=1&resourceVersion=$rv&timeoutSeconds=20" -N >"$TMP/w1" 2>&1 &
BG+=($!)
fake_wait_watches 1 5
fake_kubectl patch ts page1 --type merge -p '{"spec":{"affinity":"client"}}' >/dev/null
fake_ctl error-410 >/dev/null
wait "${BG[-1]}"
expect "MODIFIED page1 ERROR -" "$(events "$TMP/w1" | xargs)" \
	"an open watch gets the change, then the injected ERROR event, then its end"
check "... the ERROR is a Status with code 410, reason Expired" \
	jt "$(tail -n1 "$TMP/w1")" 'd["object"]["code"] == 410 and d["object"]["reason"] == "Expired"'
: >"$TMP/w2"
fake_curl GET "$TS?watch=1&resourceVersion=0&timeoutSeconds=20" -N >"$TMP/w2" 2>&1 &
BG+=($!)
wait_for 5 grep -q ADDED "$TMP/w2"
fake_ctl drop-watches >/dev/null
wait "${BG[-1]}"
rc=$?
expect "18 5" "$rc $(grep -c '"type": "ADDED"' "$TMP/w2")" \
	"resourceVersion=0 replays 5 ADDED; drop-watches cuts the stream (curl: transfer closed)"

# a watch with a label selector sees an object leave it as DELETED, enter it as ADDED
rv=$(jf "$(fake_curl GET "$TS")" 'd["metadata"]["resourceVersion"]')
: >"$TMP/w3"
fake_curl GET "$TS?watch=1&resourceVersion=$rv&labelSelector=tier%3Db&timeoutSeconds=20" -N \
	>"$TMP/w3" 2>&1 &
BG+=($!)
fake_wait_watches 1 5
fake_kubectl label ts page4 tier- >/dev/null
fake_kubectl label ts page3 tier=b >/dev/null
wait_for 5 grep -q '"ADDED"' "$TMP/w3"
fake_ctl drop-watches >/dev/null
wait "${BG[-1]}"
expect "DELETED page4 ADDED page3" "$(events "$TMP/w3" | head -n2 | xargs)" \
	"a labelSelector watch: DELETED when the label goes, ADDED when it comes"

# --- namespaces, unconditional updates -----------------------------------------------------
sed '/namespace: default/d' "$M/ts1.yaml" >"$M/ts-nons.yaml"
out=$(fake_kubectl create namespace prod 2>&1 &&
	fake_kubectl -n prod create -f "$M/ts-nons.yaml" 2>&1)
check "kubectl create namespace (protobuf), then a TrafficShift in it" \
	has_all "$out" "namespace/prod created" "trafficshift.kshift.dev/web created"
out=$(fake_kubectl -n nowhere create -f "$M/ts-nons.yaml" 2>&1)
check "creating in a namespace that does not exist: NotFound" \
	grep -q 'namespaces "nowhere" not found' <<<"$out"
fake_kubectl delete namespace prod >/dev/null 2>&1
expect "NotFound" "$(jf "$(fake_curl GET "${TS/default/prod}/web")" 'd["reason"]')" \
	"deleting the namespace deletes what was in it"
c=$(code PUT "$TS/web" -H 'Content-Type: application/json' \
	-d "$(jf "$(fake_curl GET "$TS/web")" 'json.dumps({**d, "metadata": {"name": "web"}})')")
expect "422 Invalid" "$c $(jf "$(<"$TMP/body")" 'd["reason"]')" \
	"a PUT of a custom resource without metadata.resourceVersion: 422, as the real API"

# --- retries, authentication -------------------------------------------------------------
ts 55 >"$M/ts3.yaml"
fake_ctl reset >/dev/null
fake_ctl conflict count=1 >/dev/null
out=$(fake_kubectl apply -f "$M/ts3.yaml" 2>&1)
patches=$(fake_count "patch trafficshifts")
expect "55 2" "$(web 's["backends"][0]["weight"]') $patches" \
	"an injected 409: kubectl apply re-reads and retries its patch"

echo "rotated-$RANDOM$RANDOM" >"$FAKE_DIR/tokens"
c=$(code GET "$TS")
expect "401 Unauthorized" "$c $(jf "$(<"$TMP/body")" 'd["reason"]')" \
	"after rotation the old token gets 401 with a Status"
export FAKE_TOKEN; FAKE_TOKEN=$(<"$FAKE_DIR/tokens") # for fake_curl
expect "200" "$(code GET "$TS")" "... and the new token 200"
out=$(fake_kubectl --context fake-tokenfile get ts web -o name 2>&1)
check "a kubeconfig tokenFile with the old token: Unauthorized" grep -q Unauthorized <<<"$out"
cp "$FAKE_DIR/tokens" "$FAKE_DIR/token"
out=$(fake_kubectl --context fake-tokenfile get ts web -o name 2>&1)
expect "trafficshift.kshift.dev/web" "$out" \
	"... the rotated one in the file: kubectl reads it again"
out=$(fake_kubectl --context fake-certs get ts web -o name 2>&1)
expect "trafficshift.kshift.dev/web" "$out" \
	"the client-certificate context works (kubectl --context fake-certs)"
c=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$FAKE_CA" --cert "$FAKE_DIR/client.crt" \
	--key "$FAKE_DIR/client.key" "$FAKE_URL$TS")
expect "200" "$c" "... and curl with the client certificate"
expect "403" "$(code POST /fake/compact)" "the control endpoint refuses a user token"

echo "1..$T"
((FAILS == 0))
