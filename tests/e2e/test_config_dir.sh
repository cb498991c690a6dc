#!/usr/bin/env bash
# End to end: the config directory is a function of its files, in tc mode
# (nothing here depends on the attach mode). Each sequence the reviewer
# found ends in the state a fresh load of the final directory gives, and
# the test ends by checking that against a restarted kshiftd.
#   - web.yaml and web2.yaml share a frontend: web2 is refused (logged);
#     rm web.yaml applies web2
#   - one name in two files: refused in both (logged naming both), removing
#     one applies the other
#   - truncating a live file keeps its shifts; writing it back applies it
#   - dir.yaml as a directory is skipped with a clear message
#   - the directory replaced (mv conf conf.old; mkdir conf): new files are
#     applied without SIGHUP, and the old directory's shifts go
#   - 8,000 shifts in one file load while `get` answers within 500 ms
set -uo pipefail
source "$(dirname "$0")/lib.sh"
ks_init confdir

shift_doc() {
	cat <<EOF2
apiVersion: kshift.dev/v1alpha1
kind: TrafficShift
metadata:
  name: $1
spec:
  frontend:
    addresses: ["$2"]
    ports:
    - {port: 80, protocol: TCP}
  backends:
  - name: stable
    endpoints: ["198.18.2.2:8080"]
    weight: ${3:-90}
  - name: canary
    endpoints: ["198.18.3.2:8080"]
    weight: ${4:-10}
EOF2
}

# put FILE NAME VIP [W1 W2]: written aside and renamed into place, as
# writers should
put() {
	local f=$1
	shift
	shift_doc "$@" >"$KS_CONF/.$f.tmp" && mv "$KS_CONF/.$f.tmp" "$KS_CONF/$f"
}

# state: "name=source-file:weights ..." of every shift, sorted
state() {
	ks_ctl get -o json 2>/dev/null | "$KS_PY" -c '
import json, os, sys
d = json.load(sys.stdin)
items = d if isinstance(d, list) else d.get("items", [])
out = []
for i in items:
    st = i.get("status", {})
    w = ",".join("%s=%s" % (b["name"], b["weight"]) for b in st.get("backends", []))
    out.append("%s=%s:%s" % (i["metadata"]["name"], os.path.basename(st.get("source", "")), w))
print(" ".join(sorted(out)))' 2>/dev/null
}

has() { ks_ctl get "$1" >/dev/null 2>&1; }
hasnt() { ! ks_ctl get "$1" >/dev/null 2>&1; }
wait_log() { ks_until "$2" 0.1 grep -qF -- "$1" "$KS_LOG"; }

mode=tc
ks_setup "$mode" stable:198.18.2.2 canary:198.18.3.2 && ks_daemon_start ||
	{ ks_mode_end; ks_done; }

# --- a shared frontend ---------------------------------------------------------
put web.yaml web 198.18.100.1
check "web.yaml is applied" ks_until 5 0.1 has web
put web2.yaml web2 198.18.100.1
check "web2.yaml, on web's frontend, is refused and logged naming web.yaml" \
	wait_log "web2.yaml: refused: default/web2" 5
check "the refusal names the frontend and the file that keeps it" \
	eval 'grep "web2.yaml: refused" "$KS_LOG" | grep -q "198.18.100.1 port 80/TCP.*web.yaml"'
check "web2 does not run" hasnt web2
rm "$KS_CONF/web.yaml"
check "after rm web.yaml, web2 is applied" ks_until 5 0.1 has web2
check "the log says it is now applied" wait_log "default/web2: stable=90 canary=10, now applied" 5
check "and web is gone" hasnt web

# --- one name in two files ------------------------------------------------------
put x.yaml dup 198.18.100.2
check "x.yaml's dup is applied" ks_until 5 0.1 has dup
put y.yaml dup 198.18.100.3
check "dup defined in x.yaml and y.yaml: refused, logged naming both" \
	wait_log "default/dup: defined in both x.yaml and y.yaml" 5
check "and neither runs" ks_until 5 0.1 hasnt dup
rm "$KS_CONF/y.yaml"
check "after rm y.yaml, x.yaml's dup is applied" ks_until 5 0.1 has dup
check "on x.yaml's frontend" eval 'ks_ctl get dup -o json | grep -q 198.18.100.2'

# --- truncation and half-writes -------------------------------------------------
: >"$KS_CONF/web2.yaml"
check "truncating web2.yaml is logged as a write in progress" wait_log "web2.yaml: empty" 5
sleep 0.5
check "and web2 keeps running" has web2
printf 'apiVersion: kshift.dev/v1alpha1\nkind: TrafficShift\nmetadata: {name: web2\nspec:' \
	>"$KS_CONF/web2.yaml"
sleep 1
check "a half-written web2.yaml keeps web2 running" has web2
shift_doc web2 198.18.100.1 60 40 >"$KS_CONF/web2.yaml"
check "the completed web2.yaml is applied (60/40)" ks_wait_weights web2 "stable=60 canary=40" 5

# --- not a regular file ----------------------------------------------------------
mkdir "$KS_CONF/dir.yaml"
put z.yaml zed 198.18.100.5
check "dir.yaml, a directory, is skipped with a clear message" \
	wait_log "dir.yaml: not a regular file: skipped" 5
check "nothing says Cannot allocate memory" eval '! grep -q "Cannot allocate memory" "$KS_LOG"'
check "the other files are applied beside it (zed)" ks_until 5 0.1 has zed

# --- the directory replaced, no SIGHUP ---------------------------------------------
mv "$KS_CONF" "$KS_CONF.old"
mkdir "$KS_CONF"
sleep 0.5
put new.yaml fresh 198.18.100.6
check "a file in the new directory is applied without SIGHUP" ks_until 5 0.1 has fresh
check "the old directory's shifts are gone (web2, dup, zed)" \
	ks_until 5 0.1 eval 'hasnt web2 && hasnt dup && hasnt zed'
put web.yaml web 198.18.100.1 70 30
check "and the new directory keeps being watched (web, 70/30)" \
	ks_wait_weights web "stable=70 canary=30" 5

# --- a large reload does not hold up the control socket ----------------------------
# 8,000 shifts in one file: read in a thread, applied 200 per turn of the
# loop; `get` of one shift is answered at once all along
"$KS_PY" - "$KS_TMP/.big.yaml" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(8000):
        f.write("---\n{apiVersion: kshift.dev/v1alpha1, kind: TrafficShift, "
                "metadata: {name: big%d}, spec: {frontend: {addresses: [198.19.%d.%d], "
                "ports: [{port: 80, protocol: TCP}]}, backends: [{name: a, "
                "endpoints: [198.18.2.2:8080], weight: 1}]}}\n" % (i, i // 250, i % 250 + 1))
PY
mv "$KS_TMP/.big.yaml" "$KS_CONF/big.yaml"
worst=0
t0=${EPOCHREALTIME//[!0-9]/}
while :; do
	a=${EPOCHREALTIME//[!0-9]/}
	ks_ctl get web >/dev/null 2>&1
	b=${EPOCHREALTIME//[!0-9]/}
	(((b - a) / 1000 > worst)) && worst=$(((b - a) / 1000))
	grep -q "8000 change(s) in" "$KS_LOG" && break
	(((b - t0) / 1000000 > 60)) && break
	sleep 0.1
done
diag "$(grep -o "8000 change(s) in .*" "$KS_LOG")"
check "8,000 shifts from one file are applied" has big7999
check "while they load, get answers within 500 ms (slowest: $worst ms)" between 0 "$worst" 500
rm "$KS_CONF/big.yaml"
check "removing the file removes them" ks_until 30 0.2 hasnt big0

# --- the same as a fresh load -------------------------------------------------------
put a.yaml early 198.18.100.6
wait_log "a.yaml" 5
sleep 0.5
before=$(state)
diag "after the sequences: $before"
ks_daemon_stop
rm -rf "$KS_TMP/state"
ks_daemon_start || { ks_mode_end; ks_done; }
after=$(state)
diag "fresh load: $after"
check "the running set equals a fresh load of the final directory" [ "$before" = "$after" ]
check "a.yaml, first by name, holds 198.18.100.6 (early runs, fresh does not)" \
	eval 'has early && hasnt fresh'

ks_mode_end
ks_done
