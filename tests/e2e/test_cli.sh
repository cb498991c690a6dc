#!/usr/bin/env bash
# End to end: a CLI operators can trust. kshiftctl against a running
# kshiftd: every verb's --help, version, -o json / -ojson / -o=json, what
# set, switch, promote and rollback say they did, "No resources found", a
# list that get -o yaml printed applied back with apply -f -, -n for apply
# and get, and every refusal with its message and exit status (0 done,
# 1 refused, 2 usage): no daemon, permission, a socket that is not
# kshiftd's, a file with no shift, a namespace contradicting -n, an
# endpoint of a family no frontend address has, a backend named twice, a change that leaves every weighted backend without an
# endpoint (unless --force). One mode: nothing here depends on the hook.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
ks_init cli

# run EXPECTED_STATUS PATTERN CMD...: CMD exits with that status and its
# output (stdout and stderr) matches the extended regex PATTERN
run() {
	local want=$1 pat=$2 out rc
	shift 2
	out=$("$@" 2>&1)
	rc=$?
	if [[ $rc == "$want" ]] && grep -Eq -- "$pat" <<<"$out"; then
		ok "$* -> $rc, says /$pat/"
	else
		not_ok "$* -> $rc (want $want), says /$pat/"
		diag "$out"
	fi
}

cat_web() {
	cat <<'YAML'
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
    endpoints: ["198.18.2.2:8080"]
    weight: 90
  - name: canary
    service: web-v2
    endpoints: []
    weight: 0
---
apiVersion: kshift.dev/v1alpha1
kind: TrafficShift
metadata:
  name: api
spec:
  frontend:
    addresses: ["198.18.100.2"]
    ports:
    - {port: 80, protocol: TCP}
  backends:
  - name: blue
    endpoints: ["198.18.2.2:8080"]
    weight: 100
  - name: green
    endpoints: ["198.18.3.2:8080"]
    weight: 0
YAML
}

CTL=$KSHIFTCTL
mode=$(ks_modes | awk '{print $1}')
if ks_setup "$mode" stable:198.18.2.2 canary:198.18.3.2 && ks_httpd_all 8080 && ks_daemon_start; then
	S=(--socket "$KS_SOCK")
	run 0 "^kshiftctl [0-9]" "$CTL" version
	run 0 "^kshiftd [0-9]" "$KSHIFTD" --version
	for verb in apply get set switch promote rollback mirror top delete conns verdicts version; do
		run 0 "^usage: kshiftctl .*$verb" "$CTL" "$verb" --help
	done
	run 2 "frobnicate: unknown command" "$CTL" "${S[@]}" frobnicate
	run 2 "usage" "$CTL" "${S[@]}" set
	run 1 "is kshiftd running\? start it or pass --socket" "$CTL" --socket "$KS_TMP/none.sock" get
	run 1 "is kshiftd running\?" env KSHIFT_SOCKET="$KS_TMP/none.sock" "$CTL" get
	run 1 "run as root or join the socket's group" setpriv --reuid=65534 --regid=65534 \
		--clear-groups "$CTL" "${S[@]}" get
	# a unix socket that is not kshiftd's: answers nonsense and hangs up
	"$KS_PY" -c 'import socket, sys, os
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(4)
open(sys.argv[2], "w").close()
for _ in range(4):
    c, _ = s.accept(); c.sendall(b"SSH-2.0-nonsense\r\n"); c.close()' \
		"$KS_TMP/other.sock" "$KS_TMP/other.ready" &
	KS_BG_PIDS+=($!)
	ks_wait_file "$KS_TMP/other.ready" 5
	run 1 "is this kshiftd's control socket\?" "$CTL" --socket "$KS_TMP/other.sock" get

	run 0 "No resources found" "$CTL" "${S[@]}" get
	printf -- '---\n# nothing here\n' >"$KS_TMP/empty.yaml"
	run 1 "holds no TrafficShift" "$CTL" "${S[@]}" apply -f "$KS_TMP/empty.yaml"
	cat_web >"$KS_TMP/web.yaml"
	run 1 "metadata.namespace default contradicts -n team" \
		"$CTL" "${S[@]}" -n team apply -f <(sed 's/^  name: web$/  name: web\n  namespace: default/' "$KS_TMP/web.yaml")
	run 0 "applied 2 shift" "$CTL" "${S[@]}" -n team apply -f "$KS_TMP/web.yaml"
	run 0 "web" "$CTL" "${S[@]}" -n team get web
	run 1 "no such shift" "$CTL" "${S[@]}" get web
	run 0 "" "$CTL" "${S[@]}" -n team delete web api
	run 0 "applied 2 shift" "$CTL" "${S[@]}" apply -f "$KS_TMP/web.yaml"
	run 0 '"name": *"web"' "$CTL" "${S[@]}" get web -o json
	run 0 '"name": *"web"' "$CTL" "${S[@]}" get web -ojson
	run 0 '"name": *"web"' "$CTL" "${S[@]}" get web -o=json
	run 2 "must be wide, json or yaml" "$CTL" "${S[@]}" get web -o xml
	run 0 "frontends: 198.18.100.1:80/TCP" "$CTL" "${S[@]}" get web
	run 0 "SHARE.*OPEN" "$CTL" "${S[@]}" get
	# a list, as get -o yaml prints it, applies back
	"$CTL" "${S[@]}" get -o yaml >"$KS_TMP/list.yaml"
	run 0 "applied 2 shift" "$CTL" "${S[@]}" apply -f - <"$KS_TMP/list.yaml"
	"$CTL" "${S[@]}" get web -o yaml >"$KS_TMP/one.yaml"
	run 0 "applied 1 shift" "$CTL" "${S[@]}" apply -f "$KS_TMP/one.yaml"

	sed 's/"198.18.3.2:8080"\]/"198.18.3.2:8080", "[2001:2:0:3::2]:8080"]/' "$KS_TMP/web.yaml" \
		>"$KS_TMP/v6ep.yaml"
	run 1 "spec.backends\[1\].endpoints\[1\]: 2001:2:0:3::2: IPv6, but no frontend address is IPv6" \
		"$CTL" "${S[@]}" apply -f "$KS_TMP/v6ep.yaml"
	run 1 "backend stable named twice" "$CTL" "${S[@]}" set web stable=1 stable=2
	run 1 "weight x: must be an integer" "$CTL" "${S[@]}" set web stable=x
	run 1 "every backend with weight would have no endpoint.*--force" \
		"$CTL" "${S[@]}" set web stable=0 canary=100
	run 1 "every backend with weight would have no endpoint" "$CTL" "${S[@]}" switch web canary
	run 0 "^default/web: stable=75 \(75%\) canary=25 \(25%\), generation [0-9]+" \
		"$CTL" "${S[@]}" set web stable=75 canary=25
	run 0 "^default/web: stable=0 \(0%\) canary=100 \(100%\)" \
		"$CTL" "${S[@]}" set web stable=0 canary=100 --force
	run 0 "^default/web: stable=100 \(100%\) canary=0 \(0%\)" "$CTL" "${S[@]}" rollback web
	run 0 "^default/web: stable=0 \(0%\) canary=0 \(0%\)" "$CTL" "${S[@]}" set web stable=0 canary=0
	run 0 "^default/api: blue=0 \(0%\) green=100 \(100%\)" "$CTL" "${S[@]}" switch api green
	run 0 "^default/api: blue=100 \(100%\) green=0 \(0%\)" "$CTL" "${S[@]}" promote api blue
	run 2 "--force is for set and switch" "$CTL" "${S[@]}" promote api --force
	run 2 "--flush is for conns" "$CTL" "${S[@]}" get web --flush
	run 1 "nosuch: no such shift" "$CTL" "${S[@]}" conns nosuch --flush
	run 0 "^flushed [0-9]+ flow\(s\)$" "$CTL" "${S[@]}" conns web --flush
	run 0 '"flushed": *[0-9]+' "$CTL" "${S[@]}" conns --flush -o json
	run 0 "^VERDICT +PACKETS" "$CTL" "${S[@]}" verdicts
	run 0 '"nat_new"' "$CTL" "${S[@]}" verdicts -o json
	run 0 "deleted default/web, generation [0-9]+" "$CTL" "${S[@]}" delete web api
	run 1 "no such shift" "$CTL" "${S[@]}" delete web
fi
ks_mode_end
ks_done
