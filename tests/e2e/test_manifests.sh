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
#       through tests/manifests/parse.c built here; no daemon needed);
#   (e) the DaemonSet has probes, is not privileged, drops every capability,
#       and RBAC grants nothing on secrets and no create/delete on
#       trafficshifts.
# The checks are tests/manifests/check.py; this script builds the parser
# runner and prints the TAP plan. No root needed.
set -uo pipefail
KS_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${KS_PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$tmp/tap
: >"$out"

# The parser alone (manifest.c needs only libyaml); a build's libkshift.a
# when manifest.c comes to need more of the library.
parser=$tmp/ks-parse
cc_log=$tmp/cc.log
if ${CC:-gcc} -std=gnu11 -O1 -D_GNU_SOURCE -I"$KS_ROOT/include" -I"$KS_ROOT/user" \
	-I"$KS_ROOT/user/lib" "$KS_ROOT/tests/manifests/parse.c" "$KS_ROOT/user/lib/manifest.c" \
	-lyaml -ljson-c -o "$parser" >"$cc_log" 2>&1 ||
	{ [[ -f $KS_ROOT/build/libkshift.a ]] &&
		${CC:-gcc} -std=gnu11 -O1 -D_GNU_SOURCE -I"$KS_ROOT/include" -I"$KS_ROOT/user" \
			-I"$KS_ROOT/user/lib" -I"$KS_ROOT/build" "$KS_ROOT/tests/manifests/parse.c" \
			"$KS_ROOT/build/libkshift.a" -lbpf -lelf -lz -lyaml -ljson-c -lcurl \
			-lmicrohttpd -lpthread -o "$parser" >>"$cc_log" 2>&1; }; then
	echo "ok - the parser runner (tests/manifests/parse.c + user/lib/manifest.c) builds" >>"$out"
else
	echo "not ok - the parser runner (tests/manifests/parse.c + user/lib/manifest.c) builds" >>"$out"
	sed 's/^/# /' "$cc_log" >>"$out"
	parser=
fi

if "$PY" -c 'import yaml, jsonschema' 2>"$tmp/py.log"; then
	"$PY" "$KS_ROOT/tests/manifests/check.py" "$KS_ROOT" "$parser" >>"$out" 2>&1 ||
		echo "not ok - tests/manifests/check.py ran to the end (exit $?)" >>"$out"
else
	echo "not ok - python3-yaml and python3-jsonschema are installed (make deps)" >>"$out"
	sed 's/^/# /' "$tmp/py.log" >>"$out"
fi

cat "$out"
n=$(grep -cE '^(not )?ok ' "$out")
echo "1..$n"
! grep -q '^not ok ' "$out"
