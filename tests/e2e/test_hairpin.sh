#!/usr/bin/env bash
# End to end: hairpin (issue #9), in tc and xdp mode. A pod that is an
# endpoint of a frontend calls that frontend, IPv4 and IPv6:
#   - at 100/0, with itself the only stable endpoint: every connection
#     works, and reaches itself (its source rewritten to the hairpin
#     address, its answers from the frontend; bpf/lib/hairpin.h)
#   - at 50/50 with a canary pod: every connection works, and some reach
#     itself, some the canary
# with netfilter in force on the node as on a kube-proxy host: conntrack's
# INVALID DROP in FORWARD and rp_filter=1. The hairpin addresses are the
# test network's (--hairpin-addr), never the default.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
ks_init hairpin

POD=198.18.2.2
POD6=2001:2:0:2::2
HAIRPIN=198.18.0.254,2001:2::fe
URL4=http://198.18.100.1:80/
URL6=http://[2001:2:0:100::1]:80/

write_manifest() {
	cat >"$1" <<YAML
apiVersion: kshift.dev/v1alpha1
kind: TrafficShift
metadata:
  name: web
spec:
  frontend:
    addresses: ["198.18.100.1", "2001:2:0:100::1"]
    ports:
    - {port: 80, protocol: TCP}
  backends:
  - name: stable
    endpoints: ["$POD:8080", "[$POD6]:8080"]
    weight: $2
  - name: canary
    endpoints: ["198.18.3.2:8080", "[2001:2:0:3::2]:8080"]
    weight: $3
YAML
}

# pod_client ARGS...: client.py in the stable pod's namespace
pod_client() {
	in_ns "$(ks_ep_ns $POD)" "$KS_PY" "$KS_E2E/client.py" "$@"
}

# netfilter as kube-proxy leaves it on a node
node_netfilter() {
	local t
	for t in iptables ip6tables; do
		in_ns "$KS_NODE" "$t" -A FORWARD -m conntrack --ctstate INVALID -j DROP || return
	done
	in_ns "$KS_NODE" sysctl -qw net.ipv4.conf.all.rp_filter=1 \
		net.ipv4.conf.default.rp_filter=1 || return
	for t in cli0 ep0 ep1; do
		in_ns "$KS_NODE" sysctl -qw "net.ipv4.conf.$t.rp_filter=1" || return
	done
}

# split URL N WANT_SELF: N connections from the pod; all must work; WANT_SELF
# all|some: how many reach the pod itself
split() {
	local url=$1 n=$2 want=$3 res fails self canary
	res=$(pod_client split "$url" "$n" --max-failures "$n")
	diag "$url: $res"
	fails=$(jq_py "$res" 'd["failures"]')
	self=$(jq_py "$res" 'sum(v for k, v in d["endpoints"].items() if k.startswith("stable "))')
	canary=$(jq_py "$res" 'd["backends"].get("canary", 0)')
	check "$n connections from the pod to $url, none failed (failed: $fails)" [ "$fails" = 0 ]
	if [[ $want == all ]]; then
		check "all $n reach the pod itself ($self)" [ "$self" = "$n" ]
	else
		check "some reach the pod itself, some the canary ($self itself, $canary canary)" \
			eval 'between 1 "$self" $((n - 1)) && between 1 "$canary" $((n - 1))'
	fi
}

out=$("$KSHIFTD" --hairpin-addr 198.18.0.999 --version 2>&1)
rc=$?
check "kshiftd --hairpin-addr 198.18.0.999 is refused, naming it (exit $rc: $out)" \
	eval '[ $rc = 2 ] && [[ $out == *198.18.0.999* ]]'

for mode in $(ks_modes); do
	ks_setup "$mode" stable:$POD canary:198.18.3.2 && ks_httpd_all 8080 &&
		ks_daemon_start --hairpin-addr "$HAIRPIN" || { ks_mode_end; continue; }
	check "netfilter on the node: conntrack INVALID DROP in FORWARD, rp_filter=1" node_netfilter

	write_manifest "$KS_TMP/web.yaml" 100 0
	if ! out=$(ks_ctl apply -f "$KS_TMP/web.yaml" 2>&1); then
		not_ok "kshiftctl apply -f web.yaml (100/0)"
		diag "$out"
		ks_mode_end
		continue
	fi
	ok "kshiftctl apply -f web.yaml (100/0)"
	ks_probe "$URL4" || { ks_mode_end; continue; }

	split "$URL4" 30 all
	split "$URL6" 30 all

	if out=$(ks_ctl set web stable=50 canary=50 2>&1); then
		ok "kshiftctl set web stable=50 canary=50"
	else
		not_ok "kshiftctl set web stable=50 canary=50"
		diag "$out"
	fi
	# 60 connections: none reaching one side is a 2^-59 chance
	split "$URL4" 60 some
	split "$URL6" 60 some

	# a client that is not an endpoint is served as before, beside them
	res=$(ks_client split "$URL4" 20 --max-failures 20)
	check "20 connections from the client, none failed" jq_ok "$res" 'd["failures"] == 0'
	ks_mode_end
done
ks_done
