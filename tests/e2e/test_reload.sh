#!/usr/bin/env bash
# End to end: local configuration and shutdown, in tc and xdp mode.
#   - a manifest in --config-dir at start is loaded; one written while
#     kshiftd runs appears in `kshiftctl get` within seconds and carries
#     traffic
#   - a malformed file (new, or overwriting a good one) is refused, the
#     daemon logs it naming the file or the field and value, and the running
#     shift stays exactly as it was; fixing the file is picked up
#   - `kshiftctl apply -f` and `set` of bad input exit 1 naming the field or
#     value on stderr and change nothing; an unknown command exits 2
#   - SIGTERM: kshiftd exits 0 and leaves the dataplane serving (SPEC:
#     only --uninstall removes it); --uninstall then removes its pins and
#     detaches from every interface (no xdp, tc or tcx program left)
set -uo pipefail
source "$(dirname "$0")/lib.sh"
ks_init reload

VIP_URL=http://198.18.100.1:80/

# manifest NAME VIP CANARY_WEIGHT [ADDRESS]: a 90/CANARY_WEIGHT shift
manifest() {
	cat <<EOF
apiVersion: kshift.dev/v1alpha1
kind: TrafficShift
metadata:
  name: $1
spec:
  frontend:
    addresses: ["${4:-$2}"]
    ports:
    - {port: 80, protocol: TCP}
  backends:
  - name: stable
    endpoints: ["198.18.2.2:8080", "198.18.2.3:8080"]
    weight: 90
  - name: canary
    endpoints: ["198.18.3.2:8080"]
    weight: $3
EOF
}

# wait_log TEXT SECONDS: until kshiftd's log contains TEXT
wait_log() {
	ks_until "$2" 0.1 grep -qF -- "$1" "$KS_LOG"
}

# refused WHAT FIELD VALUE ARGS...: kshiftctl ARGS exits 1, stderr names
# FIELD and VALUE, and the spec of web is unchanged
refused() {
	local what=$1 field=$2 value=$3 err rc
	shift 3
	err=$(ks_ctl "$@" 2>&1 >/dev/null)
	rc=$?
	check "$what: kshiftctl exits 1 (got $rc)" [ "$rc" = 1 ]
	check "$what: stderr names $field and $value" \
		eval '[[ $err == *"$field"* && $err == *"$value"* ]]'
	diag "stderr: $err"
	check "$what: web is unchanged" [ "$(ks_spec web)" = "$spec0" ]
}

# attachments: how many xdp/tcx programs are attached in the node (ks_hooks:
# bpftool 7.1 does not show tcx)
attachments() {
	ks_hooks "$KS_NODE" $(ks_ifaces | tr , ' ') | wc -l
}

for mode in $(ks_modes); do
	ks_setup "$mode" stable:198.18.2.2 stable:198.18.2.3 canary:198.18.3.2 &&
		ks_httpd_all 8080 || { ks_mode_end; continue; }
	# present before kshiftd starts: loaded at start
	manifest pre 198.18.100.3 10 >"$KS_CONF/pre.yaml"
	ks_daemon_start || { ks_mode_end; continue; }
	check "a manifest present at start is loaded (get pre)" \
		ks_wait_weights pre "stable=90 canary=10" 10

	# written while running: reloaded
	t0=$(ks_now)
	manifest web 198.18.100.1 10 >"$KS_CONF/web.yaml"
	if ks_wait_weights web "stable=90 canary=10" 10; then
		ok "a manifest written into --config-dir appears in get ($(echo "$(ks_now) - $t0" | bc | cut -c1-4) s)"
	else
		not_ok "a manifest written into --config-dir appears in get within 10 s"
	fi
	# the same while a client talks to kshiftd every 50 ms (a monitor, a
	# script polling for the change): control traffic must not hold a
	# reload back
	t0=$(ks_now)
	manifest busy 198.18.100.4 10 >"$KS_CONF/busy.yaml"
	if ks_until 5 0.05 eval 'ks_ctl get busy >/dev/null 2>&1'; then
		ok "a manifest appears in get while kshiftctl polls every 50 ms ($(echo "$(ks_now) - $t0" | bc | cut -c1-4) s)"
	else
		not_ok "a manifest appears in get within 5 s while kshiftctl polls every 50 ms"
	fi
	# traffic checks only while traffic flows at all: the rest of this test
	# is about configuration and needs none
	flows=0
	if ks_probe "$VIP_URL"; then
		flows=1
		res=$(ks_client split "$VIP_URL" 200)
		diag "split: $res"
		check "the reloaded shift carries traffic (200 connections, stable and canary)" \
			jq_ok "$res" 'd["failures"] == 0 and d["backends"].get("canary", 0) > 0 and d["backends"].get("stable", 0) > 0'
	fi
	spec0=$(ks_spec web)
	[[ $spec0 == unreadable || $spec0 == null ]] && not_ok "kshiftctl get web -o json has a spec ($spec0)"

	# a malformed new file
	printf 'apiVersion: kshift.dev/v1alpha1\nkind: TrafficShift\nmetadata: {name: broken\nspec: [\n' \
		>"$KS_CONF/broken.yaml"
	check "a malformed new file is logged by name (broken.yaml)" wait_log broken.yaml 10
	check "the malformed file makes no shift (get broken fails)" \
		eval '! ks_ctl get broken >/dev/null 2>&1'
	check "after the malformed file web is unchanged" [ "$(ks_spec web)" = "$spec0" ]

	# a good file overwritten with a bad weight
	manifest web 198.18.100.1 2000000 >"$KS_CONF/web.yaml"
	check "an out-of-range weight in web.yaml is logged naming the value (2000000)" \
		wait_log 2000000 10
	check "the log line names the field (weight)" \
		eval 'grep -F 2000000 "$KS_LOG" | grep -q weight'
	check "after the bad web.yaml web is unchanged" [ "$(ks_spec web)" = "$spec0" ]
	if ((flows)); then
		res=$(ks_client split "$VIP_URL" 100)
		check "after the bad web.yaml traffic still flows (100 connections)" \
			jq_ok "$res" 'd["failures"] == 0 and d["backends"].get("canary", 0) > 0'
	fi
	manifest web 198.18.100.1 50 >"$KS_CONF/web.yaml"
	check "fixing web.yaml is picked up (stable=90 canary=50)" \
		ks_wait_weights web "stable=90 canary=50" 10
	spec0=$(ks_spec web)

	# refused on the command line
	manifest web 198.18.100.1 2000000 >"$KS_TMP/bad-weight.yaml"
	refused "apply -f with weight 2000000" weight 2000000 apply -f "$KS_TMP/bad-weight.yaml"
	manifest web 198.18.100.1 10 198.18.100.300 >"$KS_TMP/bad-address.yaml"
	refused "apply -f with address 198.18.100.300" addresses 198.18.100.300 \
		apply -f "$KS_TMP/bad-address.yaml"
	refused "set web nosuch=5" nosuch nosuch set web nosuch=5
	refused "set web canary=2000000" canary 2000000 set web canary=2000000
	ks_ctl frobnicate >/dev/null 2>&1
	rc=$?
	check "an unknown command exits 2 (got $rc)" [ "$rc" = 2 ]

	# SIGTERM: clean exit, the dataplane stays; --uninstall: nothing left
	n=$(attachments)
	check "before SIGTERM programs are attached in the node ($n attachments)" \
		between 1 "$n" 1000
	ks_daemon_stop
	rc=$?
	check "kshiftd exits 0 on SIGTERM (got $rc)" [ "$rc" = 0 ]
	n2=$(attachments)
	check "after SIGTERM the programs stay attached ($n2 attachments)" [ "$n2" = "$n" ]
	out=$(ip netns exec "$KS_NODE" "$KSHIFTD" --uninstall --pin-path "$KS_PIN" 2>&1)
	rc=$?
	check "kshiftd --uninstall exits 0 (got $rc)" [ "$rc" = 0 ]
	diag "uninstall: $out"
	# maps.debug and progs.debug are the kernel's own (bpf_preload): every
	# bpffs mount has them; an empty pin directory is no pin
	left=$(find "$KS_BPFFS" -mindepth 1 ! -type d ! -name maps.debug ! -name progs.debug)
	check "no pins are left under the pin path" [ -z "$left" ]
	[[ -n $left ]] && diag "left: $left"
	# prog/xdp: the attached program line (the word xdp alone would match
	# this test's namespace names, shown as link-netns)
	check "no xdp program is left on any interface (ip link show)" \
		eval '! ip -n "$KS_NODE" link show | grep -q "prog/xdp"'
	tcleft=
	for dev in $(ks_ifaces | tr , ' '); do
		tcleft+=$(tc -n "$KS_NODE" filter show dev "$dev" ingress)
		tcleft+=$(tc -n "$KS_NODE" filter show dev "$dev" egress)
	done
	check "no tc filter is left on any interface (tc filter show)" [ -z "$tcleft" ]
	n=$(attachments)
	check "no xdp or tcx program is left on any interface ($n)" [ "$n" = 0 ]

	ks_mode_end
done
ks_done
