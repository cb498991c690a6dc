# shellcheck shell=bash
# tests/k8s/lib.sh: start, drive and stop the fake Kubernetes API server
# (tests/k8s/fakeapi.py, whose header says what it serves). Source it.
#
#   source "$KS_ROOT/tests/k8s/lib.sh"
#   fake_start "$dir" [--data objs.yaml --bookmark-interval 0.5 ...] || fail
#       # starts it in the background on 127.0.0.1 (or --host H) and waits
#       # until it listens; exports FAKE_DIR FAKE_PID FAKE_URL (https://H:PORT)
#       # FAKE_TOKEN FAKE_ADMIN_TOKEN FAKE_CA, KUBECONFIG=$dir/kubeconfig and
#       # KUBECACHEDIR (kubectl's discovery cache, kept inside $dir)
#   fake_kubectl get ts -A              # kubectl against the fake
#   fake_curl GET /apis/kshift.dev/v1alpha1/trafficshifts [curl args...]
#       # one API request with the user token; prints the body
#   fake_ctl drop-watches               # fault injection, admin token
#   fake_ctl gone resource=trafficshifts count=2
#   fake_ctl conflict count=3; fake_ctl compact; fake_ctl error-410
#   fake_ctl counters                   # JSON {"watch trafficshifts": 3, ...}
#   fake_count "list endpointslices"    # one counter (0 when never counted)
#   fake_wait_watches 3 [SECONDS]       # until exactly 3 watches are open (10 s)
#   fake_ctl log                        # every request: METHOD PATH STATUS WHO
#   fake_stop                           # also safe when nothing runs
#
# Tokens: $FAKE_DIR/tokens holds the valid ones, one a line, re-read on every
# request: rewrite it to rotate. The kubeconfig has contexts fake (token),
# fake-certs (client certificate) and fake-tokenfile ($FAKE_DIR/token).
# The server's own output goes to $FAKE_DIR/fakeapi.out, requests to
# $FAKE_DIR/requests.log.

FAKE_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FAKE_PY=${KS_PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
FAKE_PID=

# fake_start DIR [ARGS...]: 0 once listening, 1 (with the server's output on
# stderr) when it does not come up within 15 s
fake_start() {
	local dir=$1 host=127.0.0.1 i
	shift
	for ((i = 1; i < $#; i++)); do
		[[ ${!i} == --host ]] && { i=$((i + 1)); host=${!i}; }
	done
	[[ $host == *:* ]] && host="[$host]"
	mkdir -p "$dir" || return
	FAKE_DIR=$(cd "$dir" && pwd)
	rm -f "$FAKE_DIR/port"
	"$FAKE_PY" "$FAKE_LIB_DIR/fakeapi.py" --dir "$FAKE_DIR" "$@" \
		>>"$FAKE_DIR/fakeapi.out" 2>&1 &
	FAKE_PID=$!
	for ((i = 0; i < 150; i++)); do
		[[ -s $FAKE_DIR/port ]] && break
		if ! kill -0 "$FAKE_PID" 2>/dev/null; then
			FAKE_PID=
			break
		fi
		sleep 0.1
	done
	if [[ ! -s $FAKE_DIR/port ]]; then
		echo "fake_start: the fake API server did not start:" >&2
		cat "$FAKE_DIR/fakeapi.out" >&2
		fake_stop
		return 1
	fi
	FAKE_URL=https://$host:$(<"$FAKE_DIR/port")
	FAKE_TOKEN=$(head -n1 "$FAKE_DIR/tokens")
	FAKE_ADMIN_TOKEN=$(<"$FAKE_DIR/admin-token")
	FAKE_CA=$FAKE_DIR/ca.crt
	KUBECONFIG=$FAKE_DIR/kubeconfig
	KUBECACHEDIR=$FAKE_DIR/kubecache
	export FAKE_DIR FAKE_PID FAKE_URL FAKE_TOKEN FAKE_ADMIN_TOKEN FAKE_CA
	export KUBECONFIG KUBECACHEDIR
}

# fake_stop: stops the server fake_start started
fake_stop() {
	if [[ -n ${FAKE_PID:-} ]]; then
		kill "$FAKE_PID" 2>/dev/null
		wait "$FAKE_PID" 2>/dev/null
	fi
	FAKE_PID=
}

# fake_kubectl ARGS...: kubectl with the fake's kubeconfig
fake_kubectl() {
	kubectl --kubeconfig "$FAKE_DIR/kubeconfig" "$@"
}

# fake_curl METHOD PATH [CURL ARGS...]: one request with the user token
fake_curl() {
	local method=$1 path=$2
	shift 2
	curl -sS --cacert "$FAKE_CA" -H "Authorization: Bearer $FAKE_TOKEN" \
		-X "$method" "$@" "$FAKE_URL$path"
}

# fake_count KEY: one of the counters ("VERB PLURAL", "open_watches")
fake_count() {
	fake_ctl counters | "$FAKE_PY" -c \
		'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], 0))' "$1"
}

# fake_wait_watches N [SECONDS]: 0 once exactly N watch streams are open
fake_wait_watches() {
	local i
	for ((i = 0; i < ${2:-10} * 10; i++)); do
		[[ $(fake_count open_watches) == "$1" ]] && return 0
		sleep 0.1
	done
	return 1
}

# fake_ctl ACTION [KEY=VALUE...]: a fault injection or inspection (see the
# header of fakeapi.py); 0 when the fake accepted it
fake_ctl() {
	local action=$1 method=POST query='' kv
	shift
	for kv in "$@"; do
		query+="${query:+&}$kv"
	done
	case $action in log | counters) method=GET ;; esac
	curl -sS --fail-with-body --cacert "$FAKE_CA" -H "Authorization: Bearer $FAKE_ADMIN_TOKEN" \
		-X "$method" "$FAKE_URL/fake/$action${query:+?$query}"
}
