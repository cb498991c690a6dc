#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# What a cluster operator applies (manifests/), checked without a cluster:
#   (a) every YAML file under manifests/ parses;
#   (b) every example TrafficShift validates against the CRD's schema
#       (python3-jsonschema, with x-kubernetes-list-type and strict fields);
#   (c) a table of bad TrafficShifts is refused by the schema, and each one
#       by kshiftd's own parser too, so the two refuse the same things; CEL
#       rules cannot run here (no API server): for those refusals the test
#       checks the parser and that the CRD carries the rule, and says so;
#   (d) every example is accepted by kshiftd's parser (ks_manifest_parse,
#       through tests/manifests/parse.c built here; no daemon needed), and
#       what `kshiftctl get -o json` would print of it validates against the
#       CRD too, so it can go back through kubectl apply;
#   (e) the DaemonSet has probes, is not privileged, drops every capability,
#       and RBAC grants nothing on secrets and no create/delete on
#       trafficshifts;
#   (g) the Containerfile: its package lists against scripts/deps.sh and the
#       binaries' libraries, and its build stage's make run on a copy of
#       exactly the sources it copies (no container engine here);
#   (f) as root, with kshiftd built: kshiftd started with exactly the
#       capabilities the DaemonSet adds (setpriv) loads, attaches and steers
#       the canary example in every mode, and fails to start with any one
#       of them taken away, so the set is the smallest that works.
# (a)-(e) and most of (g) are tests/manifests/check.py and need no root.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d /tmp/kse-manifests-XXXXXX)
trap 'ks_teardown; rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
KS_TEST=manifests

# --- (a)-(e) -------------------------------------------------------------------

# The parser and its JSON writer alone (they need only libyaml and json-c);
# a build's libkshift.a when they come to need more of the library.
parser=$tmp/ks-parse
cc_flags=(-std=gnu11 -O1 -D_GNU_SOURCE -I"$KS_ROOT/include" -I"$KS_ROOT/user" -I"$KS_ROOT/user/lib")
if ${CC:-gcc} "${cc_flags[@]}" "$KS_ROOT/tests/manifests/parse.c" "$KS_ROOT/user/lib/manifest.c" \
	"$KS_ROOT/user/lib/shift_json.c" -lyaml -ljson-c -o "$parser" >"$tmp/cc.log" 2>&1 ||
	{ [[ -f $KS_ROOT/build/libkshift.a ]] &&
		${CC:-gcc} "${cc_flags[@]}" -I"$KS_ROOT/build" "$KS_ROOT/tests/manifests/parse.c" \
			"$KS_ROOT/build/libkshift.a" -lbpf -lelf -lz -lyaml -ljson-c -lcurl \
			-lmicrohttpd -lpthread -o "$parser" >>"$tmp/cc.log" 2>&1; }; then
	ok "the parser runner (tests/manifests/parse.c, user/lib/manifest.c, shift_json.c) builds"
else
	not_ok "the parser runner (tests/manifests/parse.c, user/lib/manifest.c, shift_json.c) builds"
	diag <"$tmp/cc.log"
	parser=
fi

if "$KS_PY" -c 'import yaml, jsonschema' 2>"$tmp/py.log"; then
	"$KS_PY" "$KS_ROOT/tests/manifests/check.py" "$KS_ROOT" "$parser" >"$tmp/check.tap" 2>&1
	rc=$?
	while IFS= read -r line; do
		case $line in
		"ok - "*) ok "${line#ok - }" ;;
		"not ok - "*) not_ok "${line#not ok - }" ;;
		*) echo "$line" ;;
		esac
	done <"$tmp/check.tap"
	((rc == 0)) || not_ok "tests/manifests/check.py ran to the end (exit status $rc)"
else
	not_ok "python3-yaml and python3-jsonschema are installed (make deps)"
	diag <"$tmp/py.log"
fi

# --- the Containerfile's build, without a container engine -------------------
# The build stage's make command, run on a copy of exactly what it COPYs:
# catches a source the image would lack, or a target that no longer builds
# from them. It needs the build packages (make deps) and the kernel's BTF.
make_cmd=$(grep -o 'make -o deps-if-missing[^&]*' "$KS_ROOT/manifests/Containerfile" | head -1 | sed 's/ *$//')
if [[ -z $make_cmd ]]; then
	not_ok "Containerfile: a make -o deps-if-missing command in the build stage"
elif ! command -v clang >/dev/null || ! command -v bpftool >/dev/null ||
	[[ ! -r /sys/kernel/btf/vmlinux ]]; then
	ok "Containerfile: the build stage's make on its sources # SKIP no clang, bpftool or kernel BTF"
else
	mkdir -p "$tmp/image"
	cp -r "$KS_ROOT/Makefile" "$KS_ROOT/include" "$KS_ROOT/bpf" "$KS_ROOT/user" "$tmp/image/"
	if (cd "$tmp/image" && bash -c "$make_cmd") >"$tmp/image.log" 2>&1 &&
		[[ -x $tmp/image/build/kshiftd && -x $tmp/image/build/kshiftctl ]]; then
		ok "Containerfile: '$make_cmd' builds kshiftd and kshiftctl from the copied sources"
	else
		not_ok "Containerfile: '$make_cmd' builds kshiftd and kshiftctl from the copied sources"
		tail -20 "$tmp/image.log" | diag
	fi
fi

# --- (f) the DaemonSet's capabilities, for real ---------------------------------

# "+bpf,+net_admin,+perfmon": what the kshiftd container adds
caps=$("$KS_PY" -c '
import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d.get("kind") == "DaemonSet":
        for c in d["spec"]["template"]["spec"]["containers"]:
            if c["name"] == "kshiftd":
                print(",".join("+" + x.lower() for x in c["securityContext"]["capabilities"]["add"]))
' "$KS_ROOT/manifests/daemonset.yaml" 2>/dev/null)

# kshiftd_with CAPS: a kshiftd that runs as root with only CAPS (setpriv
# bounds what root gets at exec, as the container runtime does)
kshiftd_with() {
	local w=$tmp/kshiftd-caps
	printf '#!/bin/sh\nexec setpriv --bounding-set=-all%s --inh-caps=-all%s %q "$@"\n' \
		"${1:+,$1}" "${1:+,$1}" "$KSHIFTD" >"$w"
	chmod +x "$w"
	echo "$w"
}

real_kshiftd=$KSHIFTD
KS_MODE_FAILS=$KS_FAILS # ks_mode_end: diagnostics only for failures of (f)
if [[ $(id -u) -ne 0 ]]; then
	ok "kshiftd with the DaemonSet's capabilities # SKIP needs root"
elif [[ ! -x $real_kshiftd || ! -x $KSHIFTCTL ]]; then
	ok "kshiftd with the DaemonSet's capabilities # SKIP kshiftd and kshiftctl not built (make)"
elif ! command -v setpriv >/dev/null; then
	ok "kshiftd with the DaemonSet's capabilities # SKIP no setpriv (util-linux)"
elif [[ -z $caps ]]; then
	not_ok "manifests/daemonset.yaml: the kshiftd container adds capabilities"
else
	for mode in $(ks_modes); do
		KSHIFTD=$(kshiftd_with "$caps")
		ks_setup "$mode" stable:198.18.2.2 canary:198.18.3.2 && ks_httpd_all 8080 &&
			ks_daemon_start || { KSHIFTD=$real_kshiftd; ks_mode_end; continue; }
		KSHIFTD=$real_kshiftd
		ok "kshiftd runs with only $caps"
		cp "$KS_ROOT/manifests/examples/canary.yaml" "$KS_TMP/web.yaml"
		if out=$(ks_ctl apply -f "$KS_TMP/web.yaml" 2>&1); then
			ok "with only $caps: kshiftctl apply -f canary.yaml"
			# up to three probes: on a loaded machine a first probe can time
			# out whatever the capabilities, which this test is not about
			for try in 1 2 3; do
				res=$(ks_client split http://198.18.100.1:80/ 5 --max-failures 2)
				jq_ok "$res" 'd["ok"] > 0' && break
				diag "probe $try: $res"
				sleep 2
			done
			check "with only $caps: traffic flows through the VIP (probe $try)" \
				jq_ok "$res" 'd["ok"] > 0'
			check "with only $caps: kshiftctl get web reports stable=90 canary=10" \
				ks_wait_weights web "stable=90 canary=10" 5
		else
			not_ok "with only $caps: kshiftctl apply -f canary.yaml"
			diag "$out"
		fi
		ks_mode_end
	done

	# each one is needed: without it kshiftd must not come up
	KS_TAG=tc
	IFS=, read -ra each <<<"$caps"
	for drop in "${each[@]}"; do
		rest=$(IFS=,; echo "${each[*]/"$drop"/}" | sed 's/,,*/,/g;s/^,//;s/,$//')
		ks_setup tc stable:198.18.2.2 || { ks_mode_end; continue; }
		ip netns exec "$KS_NODE" "$(kshiftd_with "$rest")" --iface "$(ks_ifaces)" --mode tc \
			--config-dir "$KS_CONF" --socket "$KS_SOCK" --pin-path "$KS_PIN" >>"$KS_LOG" 2>&1 &
		KS_DAEMON_PID=$!
		for ((i = 0; i < 200; i++)); do
			kill -0 "$KS_DAEMON_PID" 2>/dev/null || break
			[[ -S $KS_SOCK ]] && ks_ctl get >/dev/null 2>&1 && break
			sleep 0.05
		done
		if kill -0 "$KS_DAEMON_PID" 2>/dev/null; then
			not_ok "kshiftd without ${drop#+} (only ${rest:-no capability}) does not start: it does, so ${drop#+} is not needed"
		else
			wait "$KS_DAEMON_PID"
			rc=$?
			KS_DAEMON_PID=
			# refused for want of the capability, not for a usage error
			why=$(grep -m1 -iE 'denied|not permitted|prohibited|lacks CAP_' "$KS_LOG")
			check "kshiftd without ${drop#+} fails to start for want of it (exit $rc: ${why:-no permission error})" \
				eval '[ "$rc" -ne 0 ] && [ "$rc" -ne 2 ] && [ -n "$why" ]'
			[[ -n $why ]] || diag <"$KS_LOG"
		fi
		ks_teardown
	done
	KS_TAG=
fi

ks_done
