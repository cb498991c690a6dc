#!/usr/bin/env bash
# End to end: blue/green under load, in tc and xdp mode.
#   - a continuous stream of new connections runs across
#     `kshiftctl switch web green` and back to blue: none fails, every
#     connection opened after a switch returned reaches the new side, every
#     one that ended before it began reached the old side (SPEC: a switch is
#     atomic; a weight-0 backend gets no new connections)
#   - promote and rollback move all new connections to the last and the
#     first backend
set -uo pipefail
source "$(dirname "$0")/lib.sh"
ks_init bluegreen

VIP_URL=http://198.18.100.1:80/
# how long the stream runs on each side of a switch; at a few hundred
# connections a second, enough to see any leftover of the old side
PHASE_SECONDS=0.8

write_manifest() {
	cp "$KS_ROOT/manifests/examples/blue-green.yaml" "$1"
}

# all_to BACKEND WHAT: 100 new connections, all must reach BACKEND
all_to() {
	local res
	res=$(ks_client split "$VIP_URL" 100)
	diag "split: $res"
	check "$2: 100 new connections all reach $1" \
		[ "$(jq_py "$res" 'd["backends"].get("'"$1"'", 0)')" = 100 ]
}

# ctl WHAT ARGS...: kshiftctl ARGS, one TAP line
ctl() {
	local what=$1 out
	shift
	if out=$(ks_ctl "$@" 2>&1); then
		ok "$what"
	else
		not_ok "$what (status $?)"
		diag "$out"
	fi
}

for mode in $(ks_modes); do
	ks_setup "$mode" blue:198.18.2.2 blue:198.18.2.3 green:198.18.3.2 &&
		ks_httpd_all 8080 && ks_daemon_start || { ks_mode_end; continue; }

	write_manifest "$KS_TMP/web.yaml"
	ctl "kshiftctl apply -f web.yaml (blue 100, green 0)" apply -f "$KS_TMP/web.yaml"
	ks_probe "$VIP_URL" || { ks_mode_end; continue; }
	all_to blue "green has weight 0"

	st=$KS_TMP/stream
	ks_client_bg "$st.json" stream "$VIP_URL" --stop-file "$st.stop" --ready-file "$st.ready" \
		--workers 2 --max-seconds 30
	st_pid=$KS_LAST_PID
	if ! ks_wait_file "$st.ready" 10; then
		not_ok "a stream of new connections starts through the VIP"
	fi
	sleep "$PHASE_SECONDS"
	t0=$(ks_now)
	ctl "kshiftctl switch web green, under a stream of new connections" switch web green
	t1=$(ks_now)
	sleep "$PHASE_SECONDS"
	t2=$(ks_now)
	ctl "kshiftctl switch web blue, under a stream of new connections" switch web blue
	t3=$(ks_now)
	sleep "$PHASE_SECONDS"
	touch "$st.stop"
	wait "$st_pid"
	res=$(ks_client stream-check "$st.json" --initial blue --switch "$t0" "$t1" green \
		--switch "$t2" "$t3" blue)
	diag "stream: $res"
	total=$(jq_py "$res" 'd["total"]')
	check "no connection of the stream failed ($(jq_py "$res" 'd["failures"]') of $total failed)" \
		[ "$(jq_py "$res" 'd["failures"]')" = 0 ]
	check "every connection opened after a switch returned reached the new side ($(jq_py "$res" 'd["violations"]') did not)" \
		[ "$(jq_py "$res" 'd["violations"]')" = 0 ]
	# the stream must really have run on each side, or the checks above
	# prove nothing
	g=$(jq_py "$res" 'd["phases"][1]["got"].get("green", 0)')
	b=$(jq_py "$res" 'd["phases"][2]["got"].get("blue", 0)')
	check "the stream ran on each side of the switches ($g to green, then $b to blue)" \
		eval 'between 20 "$g" 1000000 && between 20 "$b" 1000000'

	ctl "kshiftctl promote web" promote web
	all_to green "after promote"
	ctl "kshiftctl rollback web" rollback web
	all_to blue "after rollback"

	ks_mode_end
done
ks_done
