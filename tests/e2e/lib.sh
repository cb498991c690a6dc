# shellcheck shell=bash
# tests/e2e/lib.sh: the shared fixture of the end-to-end tests. Source it.
#
# Builds SPEC.md "The test network" out of network namespaces of our own:
#
#   client ns  eth0 198.18.1.2/24 2001:2:0:1::2/64 --- cli0  (node)
#   ep0 ns     eth0 198.18.2.2/24 2001:2:0:2::2/64 --- ep0   (node)
#   ep1 ns     eth0 198.18.2.3/24 ...              --- ep1   (node)
#   ...        one namespace and one veth per backend endpoint, like pods
#
# The node namespace forwards (IPv4 and IPv6) and runs kshiftd on all its
# veths. Each endpoint is routed by a /32 (/128) to its own veth, the way
# Kubernetes CNIs route pods; the node carries the gateway address
# 198.18.N.1 (2001:2:0:N::1) on every veth of subnet N. Nothing has a route
# out of these namespaces, so no test packet can reach any other network.
#
# A test script:
#   source "$(dirname "$0")/lib.sh"
#   ks_init canary                        # name; installs the cleanup trap
#   for mode in $(ks_modes); do           # KS_MODES, default "tc xdp"
#       ks_setup "$mode" stable:198.18.2.2 canary:198.18.3.2 &&
#           ks_httpd_all 8080 && ks_daemon_start || { ks_mode_end; continue; }
#       ks_ctl apply -f FILE
#       ks_probe URL || { ks_mode_end; continue; }
#       ... ks_client split URL N; check MSG COMMAND ...
#       ks_mode_end                       # diagnostics if it failed, teardown
#   done
#   ks_done                               # TAP plan, exit status
#
# Knobs (environment): KS_MODES; KSHIFTD, KSHIFTCTL (binaries); KS_PYTHON;
# KS_CLIENT_TX, KS_BACKEND_TX (checksum offload, see ks_setup).
#
# Every name carries the prefix kse-TEST-PID-MODE, so tests run side by side;
# ks_teardown (also run on EXIT, INT and TERM) kills what the test started and
# deletes its namespaces, bpffs mount and temporary directory.

KS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KS_E2E=$KS_ROOT/tests/e2e
# shellcheck source=../../scripts/testnet.sh
source "$KS_ROOT/scripts/testnet.sh"
KSHIFTD=${KSHIFTD:-$KS_ROOT/build/kshiftd}
KSHIFTCTL=${KSHIFTCTL:-$KS_ROOT/build/kshiftctl}
# the system python, not a pyenv shim: it starts faster and is the same in
# every namespace
KS_PY=${KS_PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}

KS_TESTS=0
KS_FAILS=0
KS_TAG=
KS_PFX=
KS_TMP=
KS_NSES=()
KS_BG_PIDS=()
KS_DAEMON_PID=
KS_EP_NAMES=()
KS_EP_ADDRS=()

# --- TAP --------------------------------------------------------------------

# ok MSG / not_ok MSG: one TAP line, tagged with the mode under test
ok() {
	KS_TESTS=$((KS_TESTS + 1))
	echo "ok - ${KS_TAG:+[$KS_TAG] }$*"
}
not_ok() {
	KS_TESTS=$((KS_TESTS + 1))
	KS_FAILS=$((KS_FAILS + 1))
	echo "not ok - ${KS_TAG:+[$KS_TAG] }$*"
}
# diag TEXT...: TAP comment lines (stdin when no argument)
diag() {
	if (($#)); then
		printf '%s\n' "$*" | sed 's/^/# /'
	else
		sed 's/^/# /'
	fi
}
# check MSG COMMAND...: ok when COMMAND succeeds
check() {
	local msg=$1
	shift
	if "$@"; then ok "$msg"; else not_ok "$msg"; fi
}

# --- life cycle ---------------------------------------------------------------

# ks_init NAME: names the test and makes sure everything is removed however
# the script ends
ks_init() {
	KS_TEST=$1
	trap 'ks_teardown' EXIT
	trap 'ks_teardown; trap - EXIT; exit 130' INT
	trap 'ks_teardown; trap - EXIT; exit 143' TERM
	if [[ $(id -u) -ne 0 ]]; then
		echo "Bail out! end-to-end tests need root"
		exit 1
	fi
}

# ks_modes: the attach modes to test, "tc xdp" unless KS_MODES says otherwise
ks_modes() {
	echo "${KS_MODES:-tc xdp}"
}

# ks_done: the TAP plan, and the exit status the runner expects
ks_done() {
	echo "1..$KS_TESTS"
	((KS_FAILS == 0))
	exit
}

# in_ns NS CMD...: runs CMD in a namespace of this test
in_ns() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}


# ks_setup MODE NAME:IPV4...: builds the network for one mode; each argument
# is one backend endpoint (the namespace also gets the IPv6 twin address)
ks_setup() {
	local mode=$1 ep
	shift
	KS_MODE=$mode
	KS_TAG=$mode
	KS_PFX=kse-$KS_TEST-$$-$mode
	KS_NSES=()
	KS_BG_PIDS=()
	KS_EP_NAMES=()
	KS_EP_ADDRS=()
	# no dot in the path: libbpf turns every "." of a pin path into "_"
	KS_TMP=$(mktemp -d "/tmp/$KS_PFX-XXXXXX") || return
	KS_SOCK=$KS_TMP/kshiftd.sock
	KS_BPFFS=$KS_TMP/bpf
	KS_PIN=$KS_BPFFS/kshift
	KS_CONF=$KS_TMP/conf
	KS_LOG=$KS_TMP/kshiftd.log
	mkdir -p "$KS_BPFFS" "$KS_CONF"
	# bpffs mounted here, on the host, before kshiftd starts: `ip netns exec`
	# gives kshiftd a mount namespace of its own, and a bpffs it mounted
	# there would be invisible (and gone) to us; this one we can inspect
	# with bpftool and check for leftover pins after kshiftd exits. The pin
	# path is a directory in it, like the default /sys/fs/bpf/kshift
	mount -t bpf bpf "$KS_BPFFS" || { not_ok "setup: mount bpffs at $KS_BPFFS"; return 1; }

	KS_NODE=$KS_PFX-node
	KS_CLIENT=$KS_PFX-client
	KS_NSES=("$KS_NODE" "$KS_CLIENT")
	for ep in "$@"; do
		KS_NSES+=("$KS_PFX-ep${#KS_EP_ADDRS[@]}")
		KS_EP_NAMES+=("${ep%%:*}")
		KS_EP_ADDRS+=("${ep#*:}")
	done
	tn_up "$KS_PFX" "$@" || { not_ok "setup: the test network (scripts/testnet.sh)"; return 1; }
	# Checksums. A veth passes a CHECKSUM_PARTIAL packet on as it is, and
	# a namespace receiving one trusts it unverified, so across veths a
	# wrong checksum would go unnoticed. The node's veths send with checksum
	# offload off (scripts/testnet.sh): whatever the node forwards has its
	# checksum completed in software on the way out, as a NIC completes it
	# on the wire, and the receiving namespace verifies it (a bad one is
	# dropped and counted in TcpInCsumErrors). That makes a wrong checksum
	# a failed test.
	# The senders: "on" sends CHECKSUM_PARTIAL packets, as pods on a node
	# do; "off" sends complete checksums, as packets from a wire have. The
	# client stands for a client beyond a NIC (KS_CLIENT_TX, default off);
	# backends are pods (KS_BACKEND_TX, default on). test_ipv6_udp.sh also
	# runs with partial checksums from both ends.
	local ctx=${KS_CLIENT_TX:-off} btx=${KS_BACKEND_TX:-on}
	ks_end_tx "$ctx" "$btx" ||
		{ not_ok "setup: checksum offload $ctx on the client, $btx on the backends"; return 1; }
	return 0
}

# ks_end_tx CLIENT [BACKENDS]: checksum offload (on|off) of the client's
# and the backends' veths (BACKENDS defaults to CLIENT)
ks_end_tx() {
	local i
	in_ns "$KS_CLIENT" ethtool -K eth0 tx "$1" >/dev/null || return
	for ((i = 0; i < ${#KS_EP_ADDRS[@]}; i++)); do
		in_ns "$KS_PFX-ep$i" ethtool -K eth0 tx "${2:-$1}" >/dev/null || return
	done
}

# ks_probe URL: a few connections through the frontend; when none gets
# through, the dataplane is down and the mode's other checks would only
# wait out timeouts: one not ok that says so, and the caller moves on
ks_probe() {
	local res
	res=$(ks_client split "$1" 5 --max-failures 2)
	if ! jq_ok "$res" 'd["ok"] > 0'; then
		not_ok "traffic flows through $1 (probe: $res); skipping the rest of $KS_MODE mode"
		return 1
	fi
}

# ks_ep_ns IPV4: the namespace of the endpoint with that address
ks_ep_ns() {
	local i
	for ((i = 0; i < ${#KS_EP_ADDRS[@]}; i++)); do
		[[ ${KS_EP_ADDRS[i]} == "$1" ]] && { echo "$KS_PFX-ep$i"; return 0; }
	done
	return 1
}

# ks_ifaces: the node-side veths, comma-separated, for --iface
ks_ifaces() {
	tn_ifaces ${#KS_EP_ADDRS[@]}
}

# ks_until SECONDS INTERVAL COMMAND...: runs COMMAND every INTERVAL seconds
# until it succeeds (0) or SECONDS of wall-clock time have passed (1);
# wall clock, not a count of tries, since a loaded machine stretches tries
ks_until() {
	local end=$((${EPOCHREALTIME//[!0-9]/} + $1 * 1000000)) interval=$2
	shift 2
	while :; do
		"$@" && return 0
		((${EPOCHREALTIME//[!0-9]/} < end)) || return 1
		sleep "$interval"
	done
}

# ks_wait_file FILE SECONDS: polls until FILE exists
ks_wait_file() {
	ks_until "$2" 0.05 test -e "$1"
}

# ks_httpd_all TCP_PORT [UDP_PORT]: one backend server per endpoint, on its
# IPv4 and IPv6 address; returns once every one listens
ks_httpd_all() {
	local i eps=()
	for ((i = 0; i < ${#KS_EP_ADDRS[@]}; i++)); do
		eps+=("${KS_EP_NAMES[i]}:${KS_EP_ADDRS[i]}")
	done
	tn_serve "$KS_PFX" "$KS_TMP" "$@" -- "${eps[@]}" && return 0
	not_ok "setup: backend servers did not start"
	cat "$KS_TMP"/httpd*.log 2>/dev/null | diag
	return 1
}

# --- kshift ---------------------------------------------------------------------

# ks_ctl ARGS...: kshiftctl on this test's daemon
ks_ctl() {
	"$KSHIFTCTL" --socket "$KS_SOCK" "$@"
}

# ks_daemon_start [ARGS...]: kshiftd in the node namespace on every node-side
# veth, in KS_MODE; returns once its control socket answers
ks_daemon_start() {
	local i
	if [[ ! -x $KSHIFTD || ! -x $KSHIFTCTL ]]; then
		not_ok "kshiftd and kshiftctl are built ($KSHIFTD, $KSHIFTCTL)"
		return 1
	fi
	# a connection table of 65,536 flows (30 MB, not the default 300):
	# enough for any test here, and quick to walk for get and conns
	# the socket lives on the host filesystem (in KS_TMP) so that kshiftctl,
	# run outside the namespace, reaches it. `ip netns exec` itself, not
	# in_ns: a function put in the background is a subshell, and $! would
	# be its pid instead of kshiftd's (ip netns exec execs, same pid)
	ip netns exec "$KS_NODE" "$KSHIFTD" --iface "$(ks_ifaces)" --mode "$KS_MODE" \
		--config-dir "$KS_CONF" --socket "$KS_SOCK" --pin-path "$KS_PIN" \
		--state-dir "$KS_TMP/state" --max-flows 65536 "$@" \
		>>"$KS_LOG" 2>&1 &
	KS_DAEMON_PID=$!
	for ((i = 0; i < 300; i++)); do
		if ! kill -0 "$KS_DAEMON_PID" 2>/dev/null; then
			wait "$KS_DAEMON_PID"
			not_ok "kshiftd starts in $KS_MODE mode (exited with status $?)"
			KS_DAEMON_PID=
			diag <"$KS_LOG"
			return 1
		fi
		if [[ -S $KS_SOCK ]] && ks_ctl get >/dev/null 2>&1; then
			ok "kshiftd starts in $KS_MODE mode on $(ks_ifaces)"
			return 0
		fi
		sleep 0.05
	done
	not_ok "kshiftd starts in $KS_MODE mode (no answer on $KS_SOCK after 15 s)"
	diag <"$KS_LOG"
	return 1
}

# ks_daemon_stop: SIGTERM, then SIGKILL after 10 s; status of kshiftd (137 if killed)
ks_daemon_stop() {
	local i pid=$KS_DAEMON_PID rc
	[[ -n $pid ]] || return 0
	KS_DAEMON_PID=
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rc=$?
	return "$rc"
}

# ks_diag: what a failure report needs: the shifts, the verdict counters and
# the end of the daemon's log, as TAP comments
ks_diag() {
	[[ -n $KS_TMP ]] || return 0
	{
		echo "--- kshiftctl get -o json"
		ks_ctl get -o json 2>&1 | head -c 6000
		echo
		echo "--- bpftool map dump pinned $KS_PIN/ks_verdicts"
		bpftool -j map dump pinned "$KS_PIN/ks_verdicts" 2>&1 | "$KS_PY" -c '
import json, sys
try:
    d = json.load(sys.stdin)
    assert isinstance(d, list)
except Exception as e:
    print("unreadable:", e); sys.exit()
for e in d:
    e = e.get("formatted", e)  # bpftool with BTF: integers, not bytes
    k = e.get("key"); v = e.get("values", e.get("value"))
    try:
        tot = sum(x["value"] for x in v) if isinstance(v, list) else v
    except Exception:
        tot = v
    if tot: print("verdict", k, "=", tot, "(enum ks_verdict; all CPUs)")' 2>&1
		echo "--- kshiftctl verdicts"
		ks_ctl verdicts 2>&1 | tr -d ' \n' | head -c 2000
		echo
		echo "--- kshiftd log (last 30 lines)"
		tail -n 30 "$KS_LOG" 2>/dev/null
	} | diag
}

# ks_teardown: removes everything of the current mode; safe to call twice
ks_teardown() {
	local pid ns
	ks_daemon_stop
	for pid in "${KS_BG_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${KS_BG_PIDS[@]}"; do
		wait "$pid" 2>/dev/null
	done
	KS_BG_PIDS=()
	for ns in "${KS_NSES[@]}"; do
		# anything still running in our namespaces was started by this test
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null
		done
		ip netns del "$ns" 2>/dev/null
	done
	KS_NSES=()
	if [[ -n $KS_TMP && -d $KS_TMP ]]; then
		mountpoint -q "$KS_BPFFS" && umount "$KS_BPFFS"
		rm -rf "$KS_TMP"
	fi
	KS_TMP=
	KS_TAG=
}

# --- clients and results ----------------------------------------------------------

# ks_client ARGS...: client.py in the client namespace (JSON on stdout)
ks_client() {
	in_ns "$KS_CLIENT" "$KS_PY" "$KS_E2E/client.py" "$@"
}

# ks_client_bg OUT ARGS...: the same in the background, output in OUT;
# its pid in KS_LAST_PID
ks_client_bg() {
	local out=$1
	shift
	ip netns exec "$KS_CLIENT" "$KS_PY" "$KS_E2E/client.py" "$@" >"$out" 2>"$out.err" &
	KS_LAST_PID=$!
	KS_BG_PIDS+=($!)
}

# jq_py JSON EXPR: evaluates a Python expression over the JSON text (as d)
jq_py() {
	# prints "?" when JSON or expression fail (a client that crashed), so a
	# check compares against "?" and fails instead of the script breaking
	"$KS_PY" -c 'import json, sys
try:
    d = json.loads(sys.argv[1])
    r = eval(sys.argv[2])
except Exception as e:
    print("jq_py: %s: %r" % (sys.argv[2], e), file=sys.stderr)
    r = "?"
print(json.dumps(r) if isinstance(r, (dict, list)) else r)' "$1" "$2"
}

# jq_ok JSON EXPR: true when the Python expression over the JSON holds
jq_ok() {
	[[ $(jq_py "$1" "$2") == True ]]
}

# ks_weights NAME: "backend=weight ..." as kshiftctl get NAME -o json reports
# them; tolerant of the exact layout (any list of objects with name and
# weight under a "backends" key)
ks_weights() {
	ks_ctl get "$1" -o json 2>/dev/null | "$KS_PY" -c '
import json, sys
def walk(o, out):
    if isinstance(o, dict):
        b = o.get("backends")
        if isinstance(b, list) and all(isinstance(x, dict) and "name" in x and "weight" in x for x in b) and b:
            out.append(" ".join("%s=%s" % (x["name"], x["weight"]) for x in b))
            return
        for v in o.values(): walk(v, out)
    elif isinstance(o, list):
        for v in o: walk(v, out)
try:
    out = []; walk(json.load(sys.stdin), out); print(out[0] if out else "")
except Exception:
    print("")'
}

# ks_wait_weights NAME WANT SECONDS: polls until ks_weights NAME says WANT;
# every 0.5 s, a pace any real user or monitor keeps
ks_wait_weights() {
	ks_until "$3" 0.5 ks_weights_are "$1" "$2"
}
ks_weights_are() {
	[[ $(ks_weights "$1") == "$2" ]]
}

# ks_spec NAME: the "spec" of shift NAME as kshiftctl get NAME -o json reports
# it, as canonical JSON; what must not change when input is refused (the rest
# of the output, such as observed traffic, may)
ks_spec() {
	ks_ctl get "$1" -o json 2>/dev/null | "$KS_PY" -c '
import json, sys
def find(o):
    if isinstance(o, dict):
        if isinstance(o.get("spec"), dict): return o["spec"]
        for v in o.values():
            r = find(v)
            if r is not None: return r
    elif isinstance(o, list):
        for v in o:
            r = find(v)
            if r is not None: return r
try:
    print(json.dumps(find(json.load(sys.stdin)), sort_keys=True))
except Exception:
    print("unreadable")'
}

# ks_mode_end: diagnostics when this mode had a failure, then teardown
ks_mode_end() {
	((KS_FAILS > ${KS_MODE_FAILS:-0})) && ks_diag
	KS_MODE_FAILS=$KS_FAILS
	ks_teardown
}

# between LO N HI: LO <= N <= HI, integers
between() {
	[[ $2 =~ ^-?[0-9]+$ ]] && (($1 <= $2 && $2 <= $3))
}

# ks_now: wall-clock seconds with nanoseconds, the clock client.py stream uses
ks_now() {
	date +%s.%N
}

# ks_hooks NS DEV...: the BPF programs attached to each DEV at XDP and at
# tcx ingress, one line each ("DEV xdp ID", "DEV tcx ID"). bpftool 7.1 and
# iproute2 6.1 do not show tcx, so this asks the kernel (BPF_PROG_QUERY)
ks_hooks() {
	local ns=$1
	shift
	in_ns "$ns" "$KS_PY" -c '
import ctypes, platform, re, socket, struct, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
NR_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine(), 321)
BPF_PROG_QUERY, BPF_TCX_INGRESS = 16, 46
for dev in sys.argv[1:]:
    try:
        idx = socket.if_nametoindex(dev)
    except OSError:
        continue
    out = subprocess.run(["ip", "-d", "-o", "link", "show", "dev", dev],
                         capture_output=True, text=True).stdout
    for m in re.finditer(r"prog/xdp id (\d+)", out):
        print(dev, "xdp", m.group(1))
    ids = (ctypes.c_uint32 * 64)()
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("IIIIQI", attr, 0, idx, BPF_TCX_INGRESS, 0, 0, ctypes.addressof(ids), 64)
    if libc.syscall(ctypes.c_long(NR_BPF), ctypes.c_long(BPF_PROG_QUERY), attr,
                    ctypes.c_long(128)) == 0:
        for i in range(struct.unpack_from("I", attr, 24)[0]):
            print(dev, "tcx", ids[i])' "$@"
}
