#!/usr/bin/env bash
# kshift against iptables and nftables service proxies, with plain forwarding
# as the limit. `make bench` builds first and runs this; run it as root.
#
#   scripts/bench.sh [--quick]
#   KS_BUILD=build-bench scripts/bench.sh   binaries from (and results to) another
#                                           build directory (make OUT=... bench sets it)
#
# Every dataplane at every size (1, 1,000 and 10,000 services; plain
# forwarding only at 1) gets a test network of its own, a "configuration":
#
#   gen ns  eth0 ---- g<run>k<i> [node ns: dataplane under test] s<run>k<i> ---- eth0  sink ns
#   198.18.1.2/24     198.18.1.1                         198.18.2.1         198.18.2.2-251/24
#
# and for the last service installed it measures
#   new flows/s       every packet a TCP SYN of a new 5-tuple (each
#                     dataplane's connection table emptied before each run:
#                     conntrack -F, kshiftctl conns --flush)
#   established pps   the same ACK segment of one flow, over and over
#   latency           p50/p99 of HTTP requests on short connections
#   update seconds    one service's weights 50/50 -> 90/10: iptables-restore
#                     --noflush as kube-proxy's partial sync writes it, one nft
#                     transaction, `kshiftctl set`. kshift's update_seconds
#                     (and install_seconds) are kshiftd's own time for the
#                     request, elapsed_us in its answer (from the request read
#                     whole to the answer ready, the dataplane change
#                     included); the time around the kshiftctl process is
#                     update_wall_seconds (install_wall_seconds)
# plus the generator's own rate and a sink fed directly by it (so a reader
# can see what bounds the numbers), and build/bench-prog's output if it exists.
#
# What users feel (issue #12), at 1 and 10,000 services, in the same rounds:
#   CPU per packet    CPU 1's kernel time (system + irq + softirq in
#                     /proc/stat) over each rate run, per million packets
#                     delivered: the node's receive path and dataplane, plus
#                     the sink's ingress drop (user time is the spinner's)
#   bulk              iperf3, 1 and 4 streams, from the generator namespace
#                     (198.18.1.254) to the measured service, with the
#                     client's and server's offloads at their defaults (TSO
#                     on) for the run: Gbit/s, and the whole machine's busy
#                     CPU time (/proc/stat, every CPU) per GB received, all of
#                     it counted against forwarding: the node's work is not
#                     separable from iperf3's own, which is the same for every
#                     dataplane
#   latency, loaded   ks-load: 16 keep-alive connections at a fixed offered
#                     rate, a third of what plain forwarding sustained in a
#                     closed-loop calibration run, p50/p99/p999 measured from
#                     when each request was due
# and once, after the rounds (full run; --quick: 10,000 services and 100,000 flows only):
#   memory            kshiftd's RSS and the memlock of its BPF maps at 1,000,
#                     10,000 and 100,000 services, and after 100,000 and
#                     1,000,000 new flows through the 10,000-service network
#   install, update   at 100,000 services: iptables-restore, nft -f (in
#                     transactions of 1,000), kshiftctl apply -f, each capped
#                     at SCALE_TIMEOUT seconds; then one weight change
#
# The rates are packets that reach the measured service's endpoints, counted
# at the sink, divided by the time the generator sent. CPU 0 runs the
# generator (ks-gen, BPF_PROG_RUN live frames); CPU 1 runs all that the
# packets cost after that: the node's receive path (a threaded NAPI poller
# pinned there), the dataplane, and the sink, which drops them at its ingress
# hook. The generator paces itself to just above what CPU 1 takes (see
# tools/ks-gen.c), so CPU 1 is saturated and not slowed by a flood it must
# refuse. While rates are measured, an idle-priority spinner on each CPU
# keeps it from halting: this is a virtual machine, and waking a halted
# virtual CPU takes so long that the veth ring overflows meanwhile; without
# the spinners the same configuration delivered anything from 60 kpps to 2.4
# Mpps. Latency is measured without them (they double it).
#
# This machine is shared and its speed wanders for seconds at a time. So all
# configurations are built first and measured in turns: run 1 of each, then
# run 2 of each, and so on; every number is the median of its runs, and a
# slow spell spoils one run of several configurations, not all of one.
# Full (under 15 minutes): 5 runs of 1.5 s per rate, 5 updates, 2,500
# latency requests, bulk and loaded latency in rounds 1, 3 and 5, then
# build/bench-prog at 200,000 runs a round. --quick (under 5 minutes): 1 and
# 10,000 services only, 3 runs of 0.6 s, 3 updates, 1,500 requests, bulk and
# loaded latency in rounds 1 and 3, and the 10,000 nftables services loaded in
# transactions of 1,000 (one transaction takes about 45 s on this kernel: it
# binds its anonymous numgen sets in O(n^2)).
#
# Output: build/bench/results.json, results.md, new_flows.png (gnuplot), and
# raw.jsonl with every sample. Only 198.18.0.0/15 addresses are used, only
# between namespaces made here; they and everything started here are removed
# on any exit. Sourced, this file only defines its functions (for poking at
# a test network by hand).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=$ROOT/${KS_BUILD:-build}
OUT=$B/bench
QUICK=0
case ${1:-} in
--quick) QUICK=1 ;;
"") ;;
*) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac

if ((QUICK)); then
	SECS=0.6 REPS=3 LAT_N=1500 NFT_CHUNK=1000
	BULK_SECS=1 LOAD_SECS=1 SCALE_SIZES="10000" SCALE_FLOWS="100000"
	QUICK_SIZES="1 10000" # 1,000 only in full runs: it keeps --quick under 5 minutes
else
	SECS=1.5 REPS=5 LAT_N=2500 NFT_CHUNK=0
	BULK_SECS=1 LOAD_SECS=2 SCALE_SIZES="1000 10000 100000" SCALE_FLOWS="100000 1000000"
fi
SCALE_SIZES=${KSB_SCALE_SIZES:-$SCALE_SIZES}
SCALE_TIMEOUT=${KSB_SCALE_TIMEOUT:-45} # x 3 dataplanes: make bench stays near 15 minutes
FEEL_SIZES=${KSB_FEEL_SIZES:-"1 10000"} # bulk and loaded latency at these sizes
LOAD_CONNS=16
BULK_SRC=198.18.1.254 # outside the sink's drop rule, like the latency client's
WARM=0.2 # the generator's pacing settles before each measured run
SIZES=${KSB_SIZES:-${QUICK_SIZES:-"1 1000 10000"}}
DATAPLANES=${KSB_DATAPLANES:-"plain iptables nftables kshift-xdp kshift-tc"}
IPTABLES=${KSB_IPTABLES:-iptables} # or iptables-legacy
PY=/usr/bin/python3                 # not a pyenv shim: those take half a second to start
GEN_CPU=0 DP_CPU=1
# kshift's XDP forwards steered packets itself (XDP_REDIRECT to the FIB's next
# hop) only when asked; KSB_XDP_REDIRECT=0 measures XDP_PASS to the stack
XDP_FLAGS=--xdp-redirect
[[ ${KSB_XDP_REDIRECT:-1} == 0 ]] && XDP_FLAGS=

PFX=ksb-$$
RUN=$(($$ % 10000)) # in interface names, which must stay short
TMP=
CFGS=()               # configuration ids, in order
declare -A C_DP C_N   # per configuration: dataplane, services
declare -A KSD        # per configuration: kshiftd's pid
declare -A HTTPD      # per configuration: ks-httpd's pid
declare -A FIRST RATE # per configuration and mode: next tuple, last paced rate
BG_PIDS=()
SPIN_PIDS=()

log() { echo "[bench $(date +%T)] $*" >&2; }
die() { log "error: $*"; exit 1; }

# --- one configuration's names --------------------------------------------------

# use K: makes configuration K the current one
use() {
	K=$1 DP=${C_DP[$1]} N=${C_N[$1]}
	GNS=$PFX-$K-g NNS=$PFX-$K-n SNS=$PFX-$K-s
	NG=g${RUN}k$K NS=s${RUN}k$K # node-side veths, unique: their NAPI thread is found by name
	KTMP=$TMP/$K
	if [[ $DP == direct ]]; then
		RX_NS=$SNS RX_IF=$NG SINK_IF=$NG # the generator's peer is the sink itself
	else
		RX_NS=$NNS RX_IF=$NG SINK_IF=eth0
	fi
	if [[ $DP == plain || $DP == direct ]]; then
		NAME='' DST=198.18.2.2 DPORT=8080 EPS=198.18.2.2
	else
		# shellcheck disable=SC1090,SC1091
		source "$OUT/rules-$N/measured.sh" # NAME VIP PORT EPS
		# shellcheck disable=SC2153
		DST=$VIP DPORT=$PORT
	fi
}

in_node() { ip netns exec "$NNS" "$@"; }

# --- building and removing a test network -----------------------------------------

ns_add() {
	ip netns add "$1" || return
	ip -n "$1" link set lo up
	# no IPv6: nothing here uses it, and its chatter would only add packets
	ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
		net.ipv6.conf.default.disable_ipv6=1 >/dev/null
}

# NAPI on every veth end (GRO on): a veth only takes frames sent with XDP
# (ks-gen's, kshift's XDP_TX) when it has NAPI
gro_on() { ip netns exec "$1" ethtool -K "$2" gro on >/dev/null; }

# net_up: the current configuration's namespaces, veths, addresses and routes
net_up() {
	local i
	mkdir -p "$KTMP"
	ns_add "$GNS" && ns_add "$SNS" || return 1
	ip -n "$GNS" link add anc0 type veth peer name anc1 || return 1 # ks-gen's anchor
	if [[ $DP == direct ]]; then
		ip -n "$GNS" link add eth0 type veth peer name "$SINK_IF" netns "$SNS" || return 1
	else
		ns_add "$NNS" || return 1
		in_node sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
			net.ipv4.conf.default.rp_filter=0 >/dev/null
		ip -n "$NNS" link add "$NG" type veth peer name eth0 netns "$GNS" &&
			ip -n "$NNS" link add "$NS" type veth peer name eth0 netns "$SNS" &&
			ip -n "$NNS" addr add 198.18.1.1/24 dev "$NG" &&
			ip -n "$NNS" addr add 198.18.2.1/24 dev "$NS" &&
			ip -n "$NNS" link set "$NG" up && ip -n "$NNS" link set "$NS" up &&
			gro_on "$NNS" "$NG" && gro_on "$NNS" "$NS" || return 1
	fi
	# 198.18.1.253 is the latency client's: the sink's drop rule spares it
	ip -n "$GNS" addr add 198.18.1.2/24 dev eth0 &&
		ip -n "$GNS" addr add 198.18.1.253/24 dev eth0 &&
		ip -n "$GNS" addr add $BULK_SRC/24 dev eth0 || return 1
	for ((i = 2; i <= 251; i++)); do
		echo "address add 198.18.2.$i/24 dev $SINK_IF"
	done | ip -n "$SNS" -batch - || return 1
	ip -n "$GNS" link set eth0 up && ip -n "$SNS" link set "$SINK_IF" up &&
		gro_on "$GNS" eth0 && gro_on "$SNS" "$SINK_IF" || return 1
	# full checksums from the client and the server (no tx offload): an XDP
	# redirect hands frames on as they are, and a checksum left to offload
	# would arrive broken (kshift's README); the same for every dataplane
	ip netns exec "$GNS" ethtool -K eth0 tx off >/dev/null &&
		ip netns exec "$SNS" ethtool -K "$SINK_IF" tx off >/dev/null || return 1
	# only our own ranges are routed: nothing can leave these namespaces
	if [[ $DP == direct ]]; then
		ip -n "$GNS" route add 198.18.0.0/15 dev eth0 || return 1
	else
		ip -n "$GNS" route add 198.18.0.0/15 via 198.18.1.1 &&
			ip -n "$SNS" route add 198.18.0.0/15 via 198.18.2.1 || return 1
	fi
	ip netns exec "$RX_NS" sh -c "echo 1 > /sys/class/net/$RX_IF/threaded" || return 1
	sink_rules || return 1
	httpd_start
}

# httpd_start, httpd_stop: the sink's HTTP server (it gives way to iperf3,
# which needs the same port: the dataplanes translate to port 8080)
httpd_start() {
	local i
	rm -f "$KTMP/httpd.ready"
	ip netns exec "$SNS" taskset -c $DP_CPU "$B/ks-httpd" --port 8080 \
		--ready "$KTMP/httpd.ready" >>"$KTMP/httpd.log" 2>&1 &
	HTTPD[$K]=$!
	BG_PIDS+=($!)
	for ((i = 0; i < 100; i++)); do
		[[ -e $KTMP/httpd.ready ]] && return 0
		sleep 0.05
	done
	log "ks-httpd did not start"
	return 1
}
httpd_stop() {
	local pid=${HTTPD[$K]:-}
	[[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	HTTPD[$K]=
	return 0
}

# sink_rules: the sink drops the generator's packets at its ingress hook, so
# they cost it little and nothing answers them; the first counter takes those
# that reached the measured service's endpoints on port 8080, the second any
# other (there should be none)
sink_rules() {
	ip netns exec "$SNS" nft -f - <<-EOF
		table netdev sink {
			chain in {
				type filter hook ingress device $SINK_IF priority 0
				ip saddr 198.18.1.2-198.18.1.251 ip daddr { ${EPS// /, } } tcp dport 8080 counter drop
				ip saddr 198.18.1.2-198.18.1.251 counter drop
			}
		}
	EOF
}

net_down() {
	kshift_stop
	ip netns del "$GNS" 2>/dev/null
	ip netns del "$NNS" 2>/dev/null
	ip netns del "$SNS" 2>/dev/null
	mountpoint -q "$KTMP/bpf" && umount "$KTMP/bpf"
	return 0
}

cleanup() {
	local k p
	for k in "${CFGS[@]}"; do use "$k" && net_down; done
	for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	[[ -n $TMP ]] && rm -rf "$TMP"
}

# --- dataplanes ---------------------------------------------------------------------

kshift_available() {
	[[ -x $B/kshiftd && -x $B/kshiftctl ]] && "$B/kshiftd" --help >/dev/null 2>&1
}

ksctl() { "$B/kshiftctl" --socket "$KTMP/kshiftd.sock" --timeout 10m "$@"; }

# kshiftd_has FLAG: whether this kshiftd knows FLAG (--max-flows and
# --max-services are on their way; the benchmark uses them once they are there)
kshiftd_has() { "$B/kshiftd" --help 2>&1 | grep -q -- "$1\b"; }
KSD_EXTRA=() # more kshiftd flags, for the scale measurements

# kshift_start MODE: starts kshiftd for the current configuration and waits
# until it answers; kshift_launch and kshift_wait are its two halves
kshift_start() {
	kshift_launch "$1" && kshift_wait
}

kshift_launch() {
	local mode=$1 pid
	mkdir -p "$KTMP/bpf" "$KTMP/conf"
	# bpffs on the host, so bpftool can read the maps from here; the pins go
	# in a directory of it, as in /sys/fs/bpf/kshift
	mountpoint -q "$KTMP/bpf" || mount -t bpf bpf "$KTMP/bpf" || return 1
	local flags=()
	[[ $mode == xdp && -n $XDP_FLAGS ]] && flags=("$XDP_FLAGS")
	# not through a shell function: $! must be kshiftd itself (ip execs
	# it), or stopping it would miss. On any CPU while it verifies its
	# programs; kshift_wait pins it to the generator's once it is up
	kshiftd_has --state-dir && flags+=(--state-dir "$KTMP/state")
	flags+=("${KSD_EXTRA[@]}")
	ip netns exec "$NNS" "$B/kshiftd" --iface "$NG,$NS" --mode "$mode" "${flags[@]}" \
		--config-dir "$KTMP/conf" --socket "$KTMP/kshiftd.sock" \
		--pin-path "$KTMP/bpf/kshift" >>"$KTMP/kshiftd.log" 2>&1 &
	pid=$!
	KSD[$K]=$pid
}

# kshift_wait: until the current configuration's kshiftd answers (60 s: a
# loaded machine verifies several programs at once for seconds each)
kshift_wait() {
	local i pid=${KSD[$K]}
	for ((i = 0; i < 1200; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "kshiftd exited: $(tail -3 "$KTMP/kshiftd.log")"
			return 1
		fi
		if [[ -S $KTMP/kshiftd.sock ]] && ksctl get >/dev/null 2>&1; then
			taskset -apc $GEN_CPU "$pid" >/dev/null
			return 0
		fi
		sleep 0.05
	done
	log "kshiftd did not answer on its socket"
	return 1
}

kshift_stop() {
	local i pid=${KSD[$K]:-}
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	KSD[$K]=
}

nft_load() {
	local f
	if ((NFT_CHUNK)); then
		rm -f "$KTMP/nft.done"
		for f in "$OUT/rules-$N"/nftables-part-*.nft; do
			in_node nft -f "$f" || return 1
			echo "$f" >>"$KTMP/nft.done" # how far it got, if it is stopped
		done
	else
		in_node nft -f "$OUT/rules-$N/nftables.nft"
	fi
}

# timed COMMAND...: wall-clock seconds of one run of COMMAND (which must succeed)
timed() {
	local t0=$EPOCHREALTIME t1
	"$@" >/dev/null || return 1
	t1=$EPOCHREALTIME
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }'
}

# ktimed KSHIFTCTL-ARGS...: "WALL DAEMON" seconds of one kshiftctl command: the
# wall clock around the process, and the daemon's own time for the request
# (elapsed_us in its answer: from the request read whole to the answer
# ready, the dataplane change included)
ktimed() {
	local t0=$EPOCHREALTIME t1 out
	out=$(ksctl -o json "$@") || return 1
	t1=$EPOCHREALTIME
	[[ $out =~ \"elapsed_us\":\ *([0-9]+) ]] || return 1
	awk -v a="$t0" -v b="$t1" -v d="${BASH_REMATCH[1]}" \
		'BEGIN { printf "%.6f %.6f\n", b - a, d / 1e6 }'
}

# install: the current dataplane's services (kshiftd runs already); prints
# its seconds (kshift: "WALL DAEMON", see ktimed). Runs in a subshell: it
# must not start anything.
install() {
	local dir=$OUT/rules-$N
	case $DP in
	plain | direct) echo 0 ;;
	iptables) timed in_node "$IPTABLES-restore" "$dir/iptables.rules" ;;
	nftables) timed nft_load ;;
	kshift-*) ktimed apply -f "$dir/kshift.yaml" ;;
	esac
}

# update: one service's weights 50/50 -> 90/10; prints seconds as install does
update() {
	local dir=$OUT/rules-$N
	case $DP in
	iptables) timed in_node "$IPTABLES-restore" --noflush "$dir/iptables-update.rules" ;;
	nftables) timed in_node nft -f "$dir/nftables-update.nft" ;;
	kshift-*) ktimed set "$NAME" stable=90 canary=10 ;;
	esac
}

# --- measurements -------------------------------------------------------------------

# spinners: one idle-priority busy loop per CPU (SCHED_IDLE: any other task
# preempts it at once), so no CPU halts between packets
spinners() {
	local cpu
	for cpu in $GEN_CPU $DP_CPU; do
		taskset -c "$cpu" chrt -i 0 sh -c 'while :; do :; done' &
		BG_PIDS+=($!)
		SPIN_PIDS+=($!)
	done
}
spinners_stop() {
	local p
	for p in "${SPIN_PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	SPIN_PIDS=()
}

# record METRIC DATAPLANE SERVICES JSON: one sample for the report
record() {
	printf '{"metric": "%s", "dataplane": "%s", "services": "%s", "value": %s}\n' \
		"$1" "$2" "$3" "$4" >>"$OUT/raw.jsonl"
}

# record_change WHAT DATAPLANE SERVICES "WALL [DAEMON]": an install or
# update time. kshift's own is the daemon's (WHAT_seconds), and the time
# around kshiftctl is kept as WHAT_wall_seconds; the others' commands are
# the whole change, so their WHAT_seconds is the wall time
record_change() {
	local wall daemon
	read -r wall daemon <<<"$4"
	if [[ -n $daemon ]]; then
		record "$1_seconds" "$2" "$3" "$daemon"
		record "$1_wall_seconds" "$2" "$3" "$wall"
	else
		record "$1_seconds" "$2" "$3" "$wall"
	fi
}

# secs "WALL [DAEMON]": the same for the log
secs() {
	local w d
	read -r w d <<<"$1"
	if [[ -n $d ]]; then
		echo "${w}s (kshiftd itself: ${d}s)"
	else
		echo "${w}s"
	fi
}

# jget JSON KEY: a number from ks-gen's or ks-lat's one-line JSON
jget() { [[ $1 =~ \"$2\":\ ([-0-9.e+]+) ]] && echo "${BASH_REMATCH[1]}"; }

gen() {
	ip netns exec "$GNS" taskset -c $GEN_CPU "$B/ks-gen" --iface eth0 --anchor anc0 \
		--dst-mac "$(ip netns exec "$RX_NS" cat "/sys/class/net/$RX_IF/address")" "$@"
}

# pin_rx: the receiving veth's NAPI thread onto the dataplane CPU (attaching
# a program can make a new one, so this runs before every measurement)
pin_rx() {
	local comm="napi/$RX_IF-" tid
	for tid in $(ps -eLo tid=,comm= | awk -v p="$comm" 'index($2, p) == 1 { print $1 }'); do
		taskset -pc $DP_CPU "$tid" >/dev/null
	done
}

# ct_flush: the current dataplane's connection table emptied, as every run
# starts from the same state: a table that keeps the last runs' flows makes
# each new flow's lookup walk longer chains (kshift's new flows/s fell by a
# quarter from a run on an empty table to the next)
ct_flush() {
	case $DP in
	iptables | nftables) in_node conntrack -F >/dev/null 2>&1 ;;
	kshift-*) ksctl conns --flush >/dev/null 2>&1 ;;
	esac
	return 0
}

# sink_count: "good other" packet counts so far
sink_count() {
	ip netns exec "$SNS" nft list chain netdev sink in |
		awk '/counter packets/ { for (i = 1; i < NF; i++) if ($i == "packets") printf "%s ", $(i + 1) } END { print "" }'
}

# rate MODE: one run; prints packets/s delivered to the measured endpoints.
# A short warm-up first settles the pacing. Tuples go on from where the
# configuration's last run stopped, so a dataplane that remembers flows
# (kshift) never sees an old one again.
rate() {
	local mode=$1 out good other c0 c1 k0 k1 key=$K-$1
	local args=(--mode "$mode" --src 198.18.1.2 --dst "$DST" --dport "$DPORT")
	pin_rx
	ct_flush
	out=$(gen "${args[@]}" --seconds $WARM --rate "${RATE[$key]:-1e7}" --first "${FIRST[$key]:-0}") ||
		return 1
	FIRST[$key]=$((${FIRST[$key]:-0} + $(jget "$out" packets)))
	ct_flush
	c0=$(sink_count)
	read -r k0 _ < <(cpu_ticks $DP_CPU kernel)
	out=$(gen "${args[@]}" --seconds $SECS --rate "$(jget "$out" rate)" --first "${FIRST[$key]}") ||
		return 1
	read -r k1 _ < <(cpu_ticks $DP_CPU kernel)
	c1=$(sink_count)
	FIRST[$key]=$((${FIRST[$key]} + $(jget "$out" packets)))
	RATE[$key]=$(jget "$out" rate)
	read -r good other < <(echo "$c0 $c1 $(jget "$out" seconds)" |
		awk '{ printf "%.0f %.0f\n", ($3 - $1) / $5, ($4 - $2) / $5 }')
	log "$DP/$N $mode: $good/s delivered (generator sent $(jget "$out" pps)/s, $other/s elsewhere)"
	((other > good / 100)) && log "  warning: $other/s reached the sink but not the measured endpoints"
	# CPU 1's kernel seconds per million packets delivered
	((good > 0)) && [[ $DP != direct ]] && record "cpu_s_per_mpkt_$mode" "$DP" "$N" "$(awk \
		-v t=$((k1 - k0)) -v hz="$HZ" -v g="$good" -v s="$(jget "$out" seconds)" \
		'BEGIN { printf "%.4f\n", t / hz / (g * s) * 1e6 }')"
	echo "$good"
}

latency() {
	local out n=$((LAT_N / REPS))
	out=$(ip netns exec "$GNS" taskset -c $GEN_CPU "$B/ks-lat" --src 198.18.1.253 \
		--dst "$DST" --port "$DPORT" --count $n) || { log "$DP/$N latency: all failed"; return 1; }
	log "$DP/$N latency: $out"
	echo "$out"
}

# cpu_ticks [CPU] [kernel]: busy and total clock ticks so far, of one CPU or
# (CPU "") of all; with "kernel", busy is system + irq + softirq only
cpu_ticks() {
	awk -v c="cpu${1:-}" -v k="${2:-}" '$1 == c {
		b = $4 + $7 + $8; if (k == "") b += $2 + $3
		print b, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
}
HZ=$(getconf CLK_TCK)

# offloads on|off: the client's and the server's veth checksum and
# segmentation offloads (on: Linux's defaults, what a pod has; off: what the
# packet rates are measured with, see net_up)
offloads() {
	ip netns exec "$GNS" ethtool -K eth0 tx "$1" tso "$1" >/dev/null 2>&1
	ip netns exec "$SNS" ethtool -K "$SINK_IF" tx "$1" tso "$1" >/dev/null 2>&1
	return 0
}

# bulk P: one iperf3 run of P streams to the measured service (ks-httpd
# stopped: iperf3 takes its port); prints "Gbit/s CPU-seconds-per-GB"
bulk() {
	local p=$1 i out b0 b1 t0 t1
	ip netns exec "$SNS" taskset -c $DP_CPU iperf3 -s -1 -p 8080 >>"$KTMP/iperf3-s.log" 2>&1 &
	local spid=$!
	for ((i = 0; i < 100; i++)); do
		ip netns exec "$SNS" ss -Hltn 'sport = :8080' | grep -q . && break
		sleep 0.02
	done
	read -r b0 t0 < <(cpu_ticks)
	out=$(ip netns exec "$GNS" taskset -c $GEN_CPU iperf3 -c "$DST" -p "$DPORT" -B $BULK_SRC \
		-P "$p" -t "$BULK_SECS" -J 2>&1)
	read -r b1 t1 < <(cpu_ticks)
	kill "$spid" 2>/dev/null
	wait "$spid" 2>/dev/null
	echo "$out" | $PY -c '
import json, sys
hz, busy = float(sys.argv[1]), float(sys.argv[2])
try:
    end = json.load(sys.stdin)["end"]["sum_received"]
except (ValueError, KeyError):
    sys.exit(1)
if end["bytes"] <= 0 or end["seconds"] <= 0:
    sys.exit(1)
print("%.3f %.4f" % (end["bits_per_second"] / 1e9, busy / hz / (end["bytes"] / 1e9)))
' "$HZ" $((b1 - b0)) || { log "$DP/$N bulk -P $p failed: $(echo "$out" | grep -m1 error)"; return 1; }
}

# load RATE: ks-load's JSON, RATE requests/s (0: closed loop, as fast as it goes)
load() {
	local r=()
	[[ $1 != 0 ]] && r=(--rate "$1")
	ip netns exec "$GNS" taskset -c $GEN_CPU "$B/ks-load" --src 198.18.1.253 --dst "$DST" \
		--port "$DPORT" --conns $LOAD_CONNS --seconds $LOAD_SECS "${r[@]}"
}

# kshift_mem: "kshiftd's RSS in kB, its maps' memlock in bytes, max_entries of ks_conns"
kshift_mem() {
	local rss f mem=0 m conns=0
	rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/${KSD[$K]}/status" 2>/dev/null)
	while read -r f; do
		m=$(bpftool -j map show pinned "$f" 2>/dev/null) || continue
		[[ $m =~ \"bytes_memlock\":([0-9]+) ]] && mem=$((mem + BASH_REMATCH[1]))
		[[ $f == */ks_conns && $m =~ \"max_entries\":([0-9]+) ]] && conns=${BASH_REMATCH[1]}
	done < <(find "$KTMP/bpf/kshift" -type f 2>/dev/null)
	echo "${rss:-0} $mem $conns"
}

# kshift_state: what to look at when kshift forwards wrongly
kshift_state() {
	local m
	{
		echo "== $DP, $N services"
		ksctl verdicts 2>&1
		for m in ks_verdicts ks_frontends; do
			echo "-- bpftool map dump pinned $KTMP/bpf/kshift/$m (head)"
			bpftool map dump pinned "$KTMP/bpf/kshift/$m" 2>&1 | head -40
		done
	} >>"$OUT/kshift-state.txt"
}

# setup K DATAPLANE SERVICES: builds and installs one configuration; in two
# halves, setup_begin (the network, and kshiftd started) and setup_end
# (kshiftd ready, the services installed), so that the kshiftds of every
# configuration load their programs at once, and installs are timed one at a
# time with nothing else starting
setup() {
	setup_begin "$@" && setup_end
}

setup_begin() {
	C_DP[$1]=$2 C_N[$1]=$3
	CFGS+=("$1")
	use "$1"
	log "$DP/$N: measured service ${NAME:-(none)} $DST:$DPORT -> ${EPS// /, }"
	net_up || { log "$DP/$N: test network setup failed"; return 1; }
	if [[ $DP == kshift-* ]]; then
		kshift_launch "${DP#kshift-}" || return 1
	fi
}

# setup_end: the current configuration's second half (see setup)
setup_end() {
	local t
	if [[ $DP == kshift-* ]]; then
		kshift_wait || return 1
	fi
	t=$(install) || { log "$DP/$N: installing failed"; return 1; }
	[[ $DP != plain && $DP != direct ]] && record_change install "$DP" "$N" "$t" &&
		log "$DP/$N: installed in $(secs "$t")"
	# warm the neighbour entries and the caches; a wrong NAT shows here first
	# (the direct sink has no way back: nothing to try there)
	[[ $DP == direct ]] && return 0
	ip netns exec "$GNS" "$B/ks-lat" --src 198.18.1.253 --dst "$DST" --port "$DPORT" \
		--count 20 >/dev/null 2>&1 ||
		log "$DP/$N: warning: no HTTP request through the dataplane succeeded"
	return 0
}

# rules N CHUNK: scripts/bench-rules.py's files for N services, unless the
# last run left the same ones (100,000 services take minutes to write)
rules() {
	local dir=$OUT/rules-$1 stamp
	stamp="$1 $2 $(sha256sum "$ROOT/scripts/bench-rules.py" | cut -d' ' -f1)"
	[[ -f $dir/stamp && $(cat "$dir/stamp") == "$stamp" ]] && return 0
	rm -rf "$dir"
	$PY "$ROOT/scripts/bench-rules.py" "$1" "$dir" --nft-chunk "$2" && echo "$stamp" >"$dir/stamp"
}

# --- main -------------------------------------------------------------------------------

[[ ${BASH_SOURCE[0]} != "$0" ]] && return 0

[[ $(id -u) -eq 0 ]] || die "run as root (make bench does the build, then this)"
for t in ks-gen ks-httpd ks-lat ks-load; do
	[[ -x $B/$t ]] || die "$B/$t is missing: run 'make bench' (it builds first)"
done
for t in ethtool nft conntrack "$IPTABLES-restore" $PY gnuplot taskset chrt iperf3 bpftool ss; do
	command -v "$t" >/dev/null || die "$t is missing: run 'make deps'"
done

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
T0=$(date +%s)
mkdir -p "$OUT"
TMP=$(mktemp -d "/tmp/$PFX-XXXXXX") # no dot: libbpf turns dots in pin paths into "_"
rm -f "$OUT/raw.jsonl" "$OUT/kshift-state.txt" "$OUT/bench-prog.txt"
cat >"$OUT/meta.json" <<EOF
{"quick": $QUICK, "seconds": $SECS, "reps": $REPS, "latency_requests": $LAT_N,
 "iptables": "$($IPTABLES -V)", "loadavg": "$(cut -d' ' -f1-3 /proc/loadavg)",
 "nft_chunk": $NFT_CHUNK, "bulk_seconds": $BULK_SECS, "load_seconds": $LOAD_SECS,
 "load_conns": $LOAD_CONNS, "scale_timeout": $SCALE_TIMEOUT,
 "max_flows_flag": $(kshiftd_has --max-flows && echo true || echo false),
 "max_services_flag": $(kshiftd_has --max-services && echo true || echo false)}
EOF

for n in $SIZES; do
	rules "$n" "$NFT_CHUNK" || die "writing the rules for $n services failed"
done
if [[ " $DATAPLANES " == *" kshift"* ]] && ! kshift_available; then
	log "skipping kshift-xdp and kshift-tc: $B/kshiftd or $B/kshiftctl is missing or does not run"
	DATAPLANES=${DATAPLANES//kshift-xdp/}
	DATAPLANES=${DATAPLANES//kshift-tc/}
fi

k=0
setup $k direct 1 || die "the generator's own test network failed"
for dp in $DATAPLANES; do
	for n in $SIZES; do
		[[ $dp == plain && $n != 1 ]] && continue
		k=$((k + 1))
		setup_begin $k "$dp" "$n" || { net_down; unset "CFGS[-1]"; }
	done
done
# kshiftds first (the rest wait for nothing), so that iptables and nftables
# are installed and timed with no program being verified beside them
ready=()
for k in "${CFGS[@]}"; do
	use "$k"
	if [[ $DP == kshift-* ]] && ! kshift_wait; then
		net_down
		continue
	fi
	ready+=("$k")
done
CFGS=("${ready[@]}")
ready=()
for k in "${CFGS[@]}"; do
	use "$k"
	((k == 0)) || setup_end || { net_down; continue; }
	ready+=("$k")
done
CFGS=("${ready[@]}")

# feel K: whether configuration K gets the bulk and loaded-latency runs
feel() { [[ ${C_DP[$1]} != direct && " $FEEL_SIZES " == *" ${C_N[$1]} "* ]]; }

# the loaded latency's offered rate: a third of what plain forwarding
# sustains with the same connections, closed loop (the best of two runs);
# half saturated the path at times (this machine slows down 1.6x for seconds)
LOAD_RATE=0
for k in "${CFGS[@]}"; do
	use "$k"
	[[ $DP == plain ]] || continue
	for r in 1 2; do
		out=$(load 0) && v=$(jget "$out" achieved) && record load_max_rps plain 1 "$v" &&
			log "plain: $v keep-alive requests/s, closed loop" &&
			((${v%.*} / 3 > LOAD_RATE)) && LOAD_RATE=$((${v%.*} / 3))
	done
done
((LOAD_RATE > 0)) || LOAD_RATE=2000
record load_rate_rps plain 1 "$LOAD_RATE"
log "latency under load at $LOAD_RATE requests/s"

spinners
# the generator flat out, with nothing after it but a veth and a sink
use 0
pin_rx
out=$(gen --mode new --src 198.18.1.2 --dst 198.18.2.2 --dport 8080 --seconds "$SECS" --no-pace) &&
	record generator_pps generator 0 "$(jget "$out" pps)" &&
	log "generator alone: $(jget "$out" pps) packets/s"
spinners_stop

for ((r = 1; r <= REPS; r++)); do
	log "round $r of $REPS"
	spinners # rates only: a spinner delays a waking task, and so the latency
	for k in "${CFGS[@]}"; do
		use "$k"
		if [[ $DP == direct ]]; then
			v=$(rate new) && record direct_sink_pps direct 1 "$v"
			continue
		fi
		v=$(rate new) && record new_flows_per_s "$DP" "$N" "$v"
		v=$(rate est) && record established_pps "$DP" "$N" "$v"
	done
	spinners_stop
	for k in "${CFGS[@]}"; do
		use "$k"
		[[ $DP == direct ]] && continue
		v=$(latency) && record latency_us "$DP" "$N" "$v"
		[[ $DP == plain ]] && continue
		v=$(update) && record_change update "${DP%-*}" "$N" "$v" &&
			log "$DP/$N weight update: $(secs "$v")"
	done
	# bulk and loaded latency in rounds 1, 3, 5: three samples each in a full
	# run, two in a quick one, spread over the run like the others
	((r % 2)) || continue
	for k in "${CFGS[@]}"; do
		feel "$k" || continue
		use "$k"
		v=$(load "$LOAD_RATE") && record load_latency_us "$DP" "$N" "$v" &&
			log "$DP/$N under load: $v"
	done
	for k in "${CFGS[@]}"; do
		feel "$k" || continue
		use "$k"
		httpd_stop
		offloads on
		for p in 1 4; do
			read -r gbps cpu < <(bulk $p) || continue
			record "bulk_gbps_p$p" "$DP" "$N" "$gbps"
			record "bulk_cpu_s_per_gb_p$p" "$DP" "$N" "$cpu"
			log "$DP/$N bulk, $p stream(s): $gbps Gbit/s, $cpu CPU-s/GB"
		done
		offloads off
		httpd_start
	done
done
# what starting each update command costs by itself: part of every update
for ((r = 1; r <= REPS; r++)); do
	v=$(timed "$B/kshiftctl" --help) && record start_seconds kshiftctl 0 "$v"
	v=$(timed "$IPTABLES-restore" --version) && record start_seconds iptables-restore 0 "$v"
	v=$(timed nft --version) && record start_seconds nft 0 "$v"
done
for k in "${CFGS[@]}"; do
	use "$k"
	[[ $DP == kshift-* ]] && kshift_state
done

# memory: kshiftd and its maps as the rounds left them, then after new flows
for k in "${CFGS[@]}"; do
	use "$k"
	[[ $DP == kshift-* && " $SCALE_SIZES " == *" $N "* ]] || continue
	read -r rss mem conns < <(kshift_mem)
	record kshiftd_rss_kb "$DP" "$N" "$rss"
	record map_memlock_bytes "$DP" "$N" "$mem"
	log "$DP/$N: kshiftd RSS $rss kB, maps $mem bytes (ks_conns: $conns entries)"
	[[ $DP == kshift-tc && $N == 10000 ]] || continue
	spinners # (see rate)
	sent=0
	for f in $SCALE_FLOWS; do
		# the rest of F new flows, one SYN each, at whatever rate the node takes
		out=$(gen --mode new --src 198.18.1.2 --dst "$DST" --dport "$DPORT" \
			--count $((f - sent)) --first $((${FIRST[$k-new]:-0} + sent))) || break
		sent=$f
		read -r rss mem conns < <(kshift_mem)
		record kshiftd_rss_kb_flows "$DP" "$f" "$rss"
		record map_memlock_bytes_flows "$DP" "$f" "$mem"
		record conns_max_entries "$DP" "$f" "$conns"
		log "$DP/$N after $f new flows: kshiftd RSS $rss kB, maps $mem bytes"
	done
	spinners_stop
done
log "removing the test networks"
cleanup
CFGS=() BG_PIDS=()

# scale: the sizes no test network was built for, installed in a node
# namespace of their own (no traffic), with a time limit
j=0
for n in $SCALE_SIZES; do
	[[ " $SIZES " == *" $n "* ]] && continue
	rules "$n" 1000 || { log "writing the rules for $n services failed"; continue; }
	KSD_EXTRA=()
	kshiftd_has --max-services && KSD_EXTRA+=(--max-services $((n + n / 4)))
	kshiftd_has --max-endpoints && KSD_EXTRA+=(--max-endpoints $((4 * n)))
	for dp in iptables nftables kshift-tc; do
		[[ $dp == kshift-* && " $DATAPLANES " != *" kshift"* ]] && continue
		j=$((j + 1))
		k=z$j # short: it is part of interface names
		C_DP[$k]=$dp C_N[$k]=$n
		CFGS+=("$k")
		use "$k"
		mkdir -p "$KTMP"
		ns_add "$NNS" || continue
		ip -n "$NNS" link add "$NG" type veth peer name "$NS" && ip -n "$NNS" link set "$NG" up &&
			ip -n "$NNS" link set "$NS" up || continue
		if [[ $dp == kshift-* ]] && ! kshift_start tc; then
			net_down
			continue
		fi
		NFT_CHUNK=1000 # one transaction of 100,000 would take hours (O(n^2), see above)
		t=$(timeout "$SCALE_TIMEOUT" bash -c "$(declare -f timed ktimed in_node nft_load ksctl install); $(declare -p B OUT N DP NNS KTMP IPTABLES NFT_CHUNK); install")
		rc=$?
		if ((rc == 124)); then
			record install_timeout_seconds "$dp" "$n" "$SCALE_TIMEOUT"
			if [[ $dp == nftables ]]; then # the first part is the table's head
				v=$(($(wc -l <"$KTMP/nft.done" 2>/dev/null || echo 1) - 1))
				((v < 0)) && v=0
				record install_partial_services "$dp" "$n" $((v * NFT_CHUNK))
			fi
			log "$dp/$n: install did not finish in ${SCALE_TIMEOUT}s"
		elif ((rc == 0)); then
			record_change install "$dp" "$n" "$t"
			log "$dp/$n: installed in $(secs "$t")"
			v=$(update) && record_change update "${dp%-*}" "$n" "$v" &&
				log "$dp/$n weight update: $(secs "$v")"
			if [[ $dp == kshift-* ]]; then
				read -r rss mem conns < <(kshift_mem)
				record kshiftd_rss_kb "$dp" "$n" "$rss"
				record map_memlock_bytes "$dp" "$n" "$mem"
				log "$dp/$n: kshiftd RSS $rss kB, maps $mem bytes"
			fi
		else
			record install_failed "$dp" "$n" 1
			log "$dp/$n: install failed${KSD[$K]:+: $(tail -2 "$KTMP/kshiftd.log")}"
		fi
		net_down
	done
done
cleanup
CFGS=() BG_PIDS=()

# (not in --quick: `make bench-prog` runs it by itself)
if ((!QUICK)) && [[ -x $B/bench-prog ]]; then
	log "$B/bench-prog (BPF_PROG_TEST_RUN ns per packet)"
	# a fifth of `make bench-prog`'s runs per round: its medians hold, and
	# it takes seconds, not minutes, on a loaded machine
	timeout 120 "$B/bench-prog" --repeat 200000 >"$OUT/bench-prog.txt" 2>&1 ||
		log "bench-prog failed"
	cat "$OUT/bench-prog.txt" >&2
fi

$PY "$ROOT/scripts/bench-report.py" "$OUT" "$(($(date +%s) - T0))" || die "report failed"
log "done in $(($(date +%s) - T0))s: $OUT/results.md"
cat "$OUT/results.md"
