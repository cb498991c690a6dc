#!/usr/bin/env python3
"""Writes the benchmark's N services for each dataplane under test.

    bench-rules.py N OUTDIR [--nft-chunk K]

OUTDIR gets:
  iptables.rules       iptables-restore input, kube-proxy's iptables layout
  iptables-update.rules  the last service's weights changed to 90/10, written
                       the way kube-proxy's partial sync writes it (iptables-
                       restore --noflush: KUBE-SERVICES in full, plus the one
                       changed KUBE-SVC chain)
  nftables.nft         nft -f input, kube-proxy's nftables layout (not
                       with --nft-chunk: it would go unused)
  nftables-part-*.nft  with --nft-chunk K: the same in transactions of K
                       services each, to load in order (faster: one big
                       transaction binds its anonymous sets in O(n^2))
  nftables-update.nft  the same weight change as one nft transaction
  kshift.yaml          N TrafficShift documents
  measured.json        the measured (last installed) service: vip, port,
                       endpoints, kshift name
  measured.sh          the same as shell variables, for scripts/bench.sh

Service i has VIP 198.18.100.(1 + i % 250), port 10000 + i // 250, and two
backends, "stable" and "canary", of one endpoint each on the sink
(198.18.2.2 .. 198.18.2.251), weighted 50/50. Every endpoint is a
service's own, as a pod's address and port are in a cluster: endpoint j
(counted from the last service back) is host j % 250, port 8080 + j // 250,
so the measured service's are on port 8080, where the sink listens and
counts. Clients are
198.18.1.0/24, which plays the cluster CIDR: kube-proxy only masquerades
traffic from outside it.
"""
import base64
import hashlib
import json
import os
import sys

CLIENTS = "198.18.1.0/24"
SINK_HOSTS = 250
EP_PORT = 8080


def service(i, n):
    vip = "198.18.100.%d" % (1 + i % 250)
    port = 10000 + i // 250
    js = [2 * (n - 1 - i) + k for k in (0, 1)]
    return {"name": "svc-%05d" % i, "vip": vip, "port": port,
            "endpoints": ["198.18.2.%d" % (2 + j % SINK_HOSTS) for j in js],
            "ep_ports": [EP_PORT + j // SINK_HOSTS for j in js]}


def kp_hash(*parts):
    # kube-proxy's chain suffix: base32 of a SHA-256, first 16 characters
    h = hashlib.sha256("".join(parts).encode()).digest()
    return base64.b32encode(h).decode()[:16]


# --- iptables -----------------------------------------------------------------


def ipt_names(s):
    svc_port = "default/%s:http" % s["name"]
    svc = "KUBE-SVC-" + kp_hash(svc_port, "tcp")
    seps = ["KUBE-SEP-" + kp_hash(svc_port, "tcp", ep) for ep in s["endpoints"]]
    return svc_port, svc, seps


def ipt_service_rule(s):
    svc_port, svc, _ = ipt_names(s)
    return ('-A KUBE-SERVICES -m comment --comment "%s cluster IP" -m tcp -p tcp '
            "-d %s/32 --dport %d -j %s" % (svc_port, s["vip"], s["port"], svc))


def ipt_svc_chain(s, weights):
    """The KUBE-SVC rules: statistic probabilities that give these weights."""
    svc_port, svc, seps = ipt_names(s)
    out = ['-A %s -m comment --comment "%s cluster IP" -m tcp -p tcp -d %s/32 --dport %d '
           "! -s %s -j KUBE-MARK-MASQ" % (svc, svc_port, s["vip"], s["port"], CLIENTS)]
    left = sum(weights)
    for k, (ep, sep) in enumerate(zip(s["endpoints"], seps)):
        rule = '-A %s -m comment --comment "%s -> %s:%d"' % (svc, svc_port, ep, s["ep_ports"][k])
        if k < len(seps) - 1:
            rule += " -m statistic --mode random --probability %.11f" % (weights[k] / left)
        out.append(rule + " -j " + sep)
        left -= weights[k]
    return out


def ipt_sep_chains(s):
    svc_port, _, seps = ipt_names(s)
    out = []
    for ep, ep_port, sep in zip(s["endpoints"], s["ep_ports"], seps):
        out.append('-A %s -m comment --comment %s -s %s/32 -j KUBE-MARK-MASQ' % (sep, svc_port, ep))
        out.append("-A %s -m comment --comment %s -m tcp -p tcp -j DNAT --to-destination %s:%d"
                   % (sep, svc_port, ep, ep_port))
    return out


NODEPORTS_RULE = ('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: '
                  'this must be the last rule in this chain" -m addrtype --dst-type LOCAL '
                  "-j KUBE-NODEPORTS")

IPT_FILTER = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FORWARD - [0:0]
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
"""


def iptables(svcs):
    lines = [IPT_FILTER.rstrip("\n"), "*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]",
             ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]", ":KUBE-SERVICES - [0:0]",
             ":KUBE-NODEPORTS - [0:0]", ":KUBE-POSTROUTING - [0:0]", ":KUBE-MARK-MASQ - [0:0]"]
    for s in svcs:
        _, svc, seps = ipt_names(s)
        lines += [":%s - [0:0]" % c for c in [svc] + seps]
    lines += [
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" '
        "-j MASQUERADE --random-fully",
    ]
    lines += [ipt_service_rule(s) for s in svcs]
    lines.append(NODEPORTS_RULE)
    for s in svcs:
        lines += ipt_svc_chain(s, [50, 50]) + ipt_sep_chains(s)
    return "\n".join(lines + ["COMMIT", ""])


def iptables_update(svcs):
    last = svcs[-1]
    _, svc, _ = ipt_names(last)
    lines = ["*nat", ":KUBE-SERVICES - [0:0]", ":KUBE-NODEPORTS - [0:0]",
             ":KUBE-POSTROUTING - [0:0]", ":KUBE-MARK-MASQ - [0:0]", ":%s - [0:0]" % svc,
             "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
             "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
             "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
             '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring '
             'SNAT" -j MASQUERADE --random-fully']
    lines += [ipt_service_rule(s) for s in svcs]
    lines.append(NODEPORTS_RULE)
    lines += ipt_svc_chain(last, [90, 10])
    return "\n".join(lines + ["COMMIT", ""])


# --- nftables -----------------------------------------------------------------


def nft_names(s):
    base = "default/%s/tcp/http" % s["name"]
    svc = "service-%s-%s-tcp-http" % (kp_hash(base), s["name"])
    eps = ["endpoint-%s-%s-%s-%d" % (kp_hash(base, ep), s["name"], ep.replace(".", "-"), ep_port)
           for ep, ep_port in zip(s["endpoints"], s["ep_ports"])]
    return svc, eps


def nft_svc_rules(s, weights):
    """The service chain's rules: a numgen vmap that gives these weights."""
    svc, eps = nft_names(s)
    # kube-proxy's equal split is "mod <endpoints>"; other weights need
    # percent slots
    mod = len(eps) if len(set(weights)) == 1 else 100
    elems, lo = [], 0
    for w, ep in zip(weights, eps):
        hi = lo + w * mod // sum(weights) - 1
        elems.append("%s : goto %s" % (str(lo) if lo == hi else "%d-%d" % (lo, hi), ep))
        lo = hi + 1
    return ["ip daddr %s tcp dport %d ip saddr != %s jump mark-for-masquerade"
            % (s["vip"], s["port"], CLIENTS),
            "numgen random mod %d vmap { %s }" % (mod, ", ".join(elems))]


NFT_HEAD = """table ip kube-proxy {
	comment "rules for kube-proxy"
	chain mark-for-masquerade {
		mark set mark or 0x4000
	}
	chain masquerading {
		mark and 0x4000 == 0 return
		mark set mark xor 0x4000
		masquerade fully-random
	}
	chain forward {
		type filter hook forward priority -110
		ct state invalid drop
	}
	chain nat-prerouting {
		type nat hook prerouting priority -100
		jump services
	}
	chain nat-output {
		type nat hook output priority -100
		jump services
	}
	chain nat-postrouting {
		type nat hook postrouting priority 100
		jump masquerading
	}
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "ClusterIP, ExternalIP and LoadBalancer IP traffic"
	}
	chain services {
		ip daddr . meta l4proto . th dport vmap @service-ips
	}
"""


def nft_chains(svcs):
    out = []
    for s in svcs:
        svc, eps = nft_names(s)
        out.append("\tchain %s {\n%s\t}\n" % (
            svc, "".join("\t\t%s\n" % r for r in nft_svc_rules(s, [50, 50]))))
        for ep, ep_port, name in zip(s["endpoints"], s["ep_ports"], eps):
            out.append("\tchain %s {\n\t\tip saddr %s jump mark-for-masquerade\n"
                       "\t\tmeta l4proto tcp dnat to %s:%d\n\t}\n" % (name, ep, ep, ep_port))
    return "".join(out)


def nft_elements(svcs):
    # the map's elements come after the chains they name
    return "".join("add element ip kube-proxy service-ips { %s }\n" % ", ".join(
        "%s . tcp . %d : goto %s" % (s["vip"], s["port"], nft_names(s)[0])
        for s in svcs[k:k + 1000]) for k in range(0, len(svcs), 1000))


def nftables(svcs):
    return NFT_HEAD + nft_chains(svcs) + "}\n" + nft_elements(svcs)


def nftables_parts(svcs, k):
    parts = [NFT_HEAD + "}\n"]
    for i in range(0, len(svcs), k):
        chunk = svcs[i:i + k]
        parts.append("table ip kube-proxy {\n" + nft_chains(chunk) + "}\n" + nft_elements(chunk))
    return parts


def nftables_update(svcs):
    last = svcs[-1]
    svc, _ = nft_names(last)
    return "flush chain ip kube-proxy %s\n%s" % (
        svc, "".join("add rule ip kube-proxy %s %s\n" % (svc, r)
                     for r in nft_svc_rules(last, [90, 10])))


# --- kshift -------------------------------------------------------------------


def kshift(svcs):
    docs = []
    for s in svcs:
        docs.append("""apiVersion: kshift.dev/v1alpha1
kind: TrafficShift
metadata:
  name: %s
spec:
  frontend:
    addresses: ["%s"]
    ports:
    - {port: %d, protocol: TCP}
  backends:
  - name: stable
    endpoints: ["%s:%d"]
    weight: 50
  - name: canary
    endpoints: ["%s:%d"]
    weight: 50
""" % (s["name"], s["vip"], s["port"], s["endpoints"][0], s["ep_ports"][0], s["endpoints"][1],
       s["ep_ports"][1]))
    return "---\n".join(docs)


def main():
    args = sys.argv[1:]
    chunk = 0
    if len(args) == 4 and args[2] == "--nft-chunk":
        chunk = int(args[3])
        args = args[:2]
    if len(args) != 2:
        sys.exit("usage: bench-rules.py N OUTDIR [--nft-chunk K]")
    n, out = int(args[0]), args[1]
    svcs = [service(i, n) for i in range(n)]
    os.makedirs(out, exist_ok=True)
    files = {
        "iptables.rules": iptables(svcs),
        "iptables-update.rules": iptables_update(svcs),
        "nftables-update.nft": nftables_update(svcs),
        "kshift.yaml": kshift(svcs),
        "measured.json": json.dumps(dict(svcs[-1], ep_port=EP_PORT)) + "\n",
        "measured.sh": 'NAME=%s VIP=%s PORT=%d EPS="%s"\n' % (
            svcs[-1]["name"], svcs[-1]["vip"], svcs[-1]["port"], " ".join(svcs[-1]["endpoints"])),
    }
    if not chunk:
        files["nftables.nft"] = nftables(svcs)
    else:
        for i, text in enumerate(nftables_parts(svcs, chunk)):
            files["nftables-part-%03d.nft" % i] = text
    for name, text in files.items():
        with open(os.path.join(out, name), "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
