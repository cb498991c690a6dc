#!/usr/bin/env python3
"""Turns the benchmark's samples into results.json, results.md and new_flows.png.

    bench-report.py OUTDIR WALL_SECONDS

Reads OUTDIR/raw.jsonl (one sample a line, written by scripts/bench.sh),
OUTDIR/meta.json (the run's settings) and OUTDIR/bench-prog.txt when
build/bench-prog ran. Each number reported is the median of its samples.
"""
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

DATAPLANES = ["plain", "iptables", "nftables", "kshift-xdp", "kshift-tc"]
SIZES = ["1", "1000", "10000"]
SCALE = ["1000", "10000", "100000"]  # the scale measurements' sizes
FEEL = ["1", "10000"]  # bulk and loaded latency
LOAD_KEYS = ("p50", "p90", "p99", "p999", "max", "achieved", "offered", "errors", "late")
RATES = [("new_flows_per_s", "New flows per second"),
         ("established_pps", "Established-flow packets per second")]


def machine():
    model, cpus, mem = "?", os.cpu_count(), 0
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // (1024 * 1024)
    return "%s, %d CPUs, %d GiB" % (model, cpus, round(mem))


def load(out):
    samples = {}
    with open(os.path.join(out, "raw.jsonl")) as f:
        for line in f:
            s = json.loads(line)
            samples.setdefault(s["metric"], {}).setdefault(s["dataplane"], {}) \
                .setdefault(s["services"], []).append(s["value"])
    return samples


def medians(samples):
    res = {}
    for metric, by_dp in samples.items():
        res[metric] = {}
        for dp, by_n in by_dp.items():
            res[metric][dp] = {}
            for n, vals in by_n.items():
                if metric == "latency_us":
                    res[metric][dp][n] = {p: statistics.median(v[p] for v in vals)
                                          for p in ("p50", "p99")}
                elif metric == "load_latency_us":
                    res[metric][dp][n] = {p: statistics.median(v[p] for v in vals)
                                          for p in LOAD_KEYS}
                else:
                    res[metric][dp][n] = statistics.median(vals)
    return res


def fmt(v):
    if v is None:
        return "–"
    if v >= 100:
        return "{:,.0f}".format(v)
    if v >= 1:
        return "%.2f" % v
    return "%.4g" % v


def ratio(a, b):
    if a is None or b is None or a <= 0 or b <= 0:
        return "–"
    r = a / b
    return ("%.0fx" if r >= 100 else "%.1fx" if r >= 10 else "%.2fx") % r


def get(res, metric, dp, n, key=None):
    v = res.get(metric, {}).get(dp, {}).get(n)
    if v is not None and key:
        v = v.get(key)
    return v


def table(res, metric, dps, value=lambda v: fmt(v), plain=None, label=None, head=True):
    """One row per dataplane, one column per size. plain(v): the cell's ratio to plain
    forwarding's (at 1 service), in brackets; label: the row's name for dp."""
    rows = ["| dataplane | " + " | ".join("%s service%s" % (n, "" if n == "1" else "s")
                                          for n in SIZES) + " |",
            "| --- |" + " ---: |" * len(SIZES)] if head else []
    base = res.get(metric, {}).get("plain", {}).get("1")

    def c(v):
        if v is None:
            return "–"
        r = ratio(plain(v), plain(base)) if plain and base is not None else "–"
        return value(v) if r == "–" else "%s (%s)" % (value(v), r)
    for dp in dps:
        if dp not in res.get(metric, {}):
            continue
        rows.append("| %s | %s |" % (label(dp) if label else dp, " | ".join(
            c(res[metric][dp].get(n)) for n in SIZES)))
    return rows


def targets(res):
    """The issue's targets at 10,000 services; None when not measured."""
    nf = lambda dp, n: get(res, "new_flows_per_s", dp, n)
    xdp10k, xdp1 = nf("kshift-xdp", "10000"), nf("kshift-xdp", "1")
    est_x, est_plain = get(res, "established_pps", "kshift-xdp", "10000"), \
        get(res, "established_pps", "plain", "1")
    upd_k, upd_i = get(res, "update_seconds", "kshift", "10000"), \
        get(res, "update_seconds", "iptables", "10000")
    # kshiftd's own time (elapsed_us in its answer) when there: then the
    # wall time around kshiftctl is update_wall_seconds
    upd_kw = get(res, "update_wall_seconds", "kshift", "10000")
    start = res.get("start_seconds", {}).get("kshiftctl")

    def check(a, b, want, label):
        if a is None or b is None or b == 0:
            return (label, "not measured", None)
        return (label, "%.2fx" % (a / b) if a / b < 100 else "%.0fx" % (a / b), a / b >= want)

    return [
        check(xdp10k, nf("iptables", "10000"), 30, "kshift XDP new flows/s ≥ 30x iptables"),
        check(xdp10k, nf("nftables", "10000"), 1.5, "kshift XDP new flows/s ≥ 1.5x nftables"),
        check(xdp10k, xdp1, 0.9, "kshift XDP new flows/s ≥ 0.9x its own at 1 service"),
        check(est_x, est_plain, 0.95, "kshift XDP established pps ≥ 0.95x plain forwarding"),
        check(upd_i, upd_kw or upd_k, 1000,
              "kshiftctl set ≥ 1000x faster than iptables-restore (around the process)"),
        check(upd_i, upd_k, 1000, "(the same, kshiftd's own time: elapsed_us in its answer)")
        if upd_kw else
        check(upd_i, None if upd_k is None or start is None else max(upd_k - start, 1e-6), 1000,
              "(the same without kshiftctl's process start)"),
    ]


def markdown(res, meta, wall, bench_prog):
    kinds = ["kshift-xdp", "kshift-tc"]
    out = ["# kshift benchmark", "",
           "Command: `%s` (scripts/bench.sh%s)." % (
               "make bench-quick" if meta["quick"] else "make bench",
               " --quick" if meta["quick"] else ""), "",
           "%s; kernel %s; %s; %s run (%g s per rate run, %s), %d s wall; load average at "
           "start %s; iptables: %s." % (
               res["machine"], res["kernel"], res["date"], "quick" if meta["quick"] else "full",
               meta["seconds"], "one run per number" if meta["reps"] == 1 else
               "median of %d runs" % meta["reps"], wall, meta["loadavg"], meta["iptables"]),
           "",
           "Generator (CPU 0) → node namespace running the dataplane → sink namespace; the "
           "node's receive path, the dataplane and the sink share CPU 1. Rates count packets "
           "that reached the measured service's endpoints (the last service installed), at "
           "the sink. New flows: every packet a TCP SYN of a new 5-tuple. Established: one "
           "flow's ACK segment, repeated.", ""]
    gen = res["generator"]
    out += ["Generator alone: %s packets/s; a sink fed directly by it takes %s packets/s. "
            "Every rate below is under the second number, which bounds what CPU 1 can "
            "receive at all." % (fmt(gen.get("own_pps")), fmt(gen.get("direct_sink_pps"))), ""]
    same = lambda v: v
    for metric, title in RATES:
        out += ["## " + title, "", "In brackets: the ratio to plain forwarding's.", ""]
        out += table(res, metric, DATAPLANES, plain=same) + [""]
    out += ["## Request latency, short connections (µs, p50 / p99)", "",
            "In brackets: the ratio of p50 to plain forwarding's.", ""]
    out += table(res, "latency_us", DATAPLANES,
                 lambda v: "%s / %s" % (fmt(v["p50"]), fmt(v["p99"])),
                 plain=lambda v: v["p50"]) + [""]
    kwall = res.get("update_wall_seconds", {}).get("kshift")
    out += ["## Weight update of one service (seconds)", "",
            "iptables: `iptables-restore --noflush` of KUBE-SERVICES and the changed KUBE-SVC "
            "chain (kube-proxy's partial sync); nftables: one `nft -f` transaction; each "
            "includes starting the command. kshift: %s" % (
                "kshiftd's own time for `kshiftctl set` (elapsed_us in its answer: from the "
                "request read whole to the answer ready, the dataplane change included), and "
                "the same around the kshiftctl process (its start, a get, the set)." if kwall else
                "`kshiftctl set`, including starting the command."), ""]
    out += table(res, "update_seconds", ["iptables", "nftables", "kshift"])
    out += table(res, "update_wall_seconds", ["kshift"], head=False,
                 label=lambda dp: "kshift, around kshiftctl") + [""]
    st = res.get("start_seconds", {})
    if st:
        out += ["Starting the command alone (`kshiftctl --help`, `iptables-restore --version`, "
                "`nft --version`): " + ", ".join("%s %s s" % (c, fmt(st[c])) for c in sorted(st))
                + ".", ""]
    out += ["Installing all services (seconds): iptables-restore, nft -f%s, kshiftctl apply -f "
            "(%s):" % (" (in transactions of %d services)" % meta["nft_chunk"]
                       if meta["nft_chunk"] else "",
                       "kshiftd's own time, then around kshiftctl" if kwall
                       else "around kshiftctl"), ""]
    out += table(res, "install_seconds", DATAPLANES[1:])
    out += table(res, "install_wall_seconds", DATAPLANES[3:], head=False,
                 label=lambda dp: dp + ", around kshiftctl") + [""]

    out += feel_md(res, meta) + scale_md(res, meta)
    out += ["## Ratios", "", "| kshift mode | metric | services | ÷ iptables | ÷ nftables | "
            "÷ plain |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for k in kinds:
        for metric, title in RATES:
            for n in SIZES:
                v = get(res, metric, k, n)
                if v is None:
                    continue
                out.append("| %s | %s | %s | %s | %s | %s |" % (
                    k, metric, n, ratio(v, get(res, metric, "iptables", n)),
                    ratio(v, get(res, metric, "nftables", n)),
                    ratio(v, get(res, metric, "plain", "1"))))
    for n in SIZES:
        k = get(res, "update_seconds", "kshift", n)
        if k:
            out.append("| kshift | update speed-up (their seconds ÷ kshift's) | %s | %s | %s | – |"
                       % (n, ratio(get(res, "update_seconds", "iptables", n), k),
                          ratio(get(res, "update_seconds", "nftables", n), k)))
    out += ["", "## Targets at 10,000 services", "", "| target | measured | met |",
            "| --- | ---: | :---: |"]
    for label, val, ok in targets(res):
        out.append("| %s | %s | %s |" % (label, val, "–" if ok is None else "yes" if ok else "**no**"))
    out += ["", "![new flows per second against services](new_flows.png)", ""]
    if bench_prog is not None:
        out += ["## BPF_PROG_TEST_RUN (build/bench-prog)", "", "```", bench_prog.rstrip(), "```", ""]
    out += ["## README table", "",
            "The README's Benchmark tables from this run, in its layout: paste between the "
            "markers.", "", "<!-- README table: begin -->"] + readme_md(res, meta, wall) + [
            "<!-- README table: end -->", ""]
    return "\n".join(out)


def cell(v, base, digits=None, lower_better=False):
    """A value and its ratio to plain forwarding's."""
    if v is None:
        return "–"
    text = fmt(v) if digits is None else ("%%.%df" % digits) % v
    r = ratio(v, base)
    return text if r == "–" or base is None else "%s (%s)" % (text, r)


def feel_md(res, meta):
    """Bulk, loaded latency and CPU per packet, each with its ratio to plain."""
    dps = [(dp, n) for dp in DATAPLANES for n in (["1"] if dp == "plain" else FEEL)]
    g = lambda m, dp, n, k=None: get(res, m, dp, n, k)
    lr = res.get("load_rate_rps")
    out = ["## What users feel", "",
           "Each cell: the median, then (in brackets) its ratio to plain forwarding's. "
           "Bulk: iperf3 from the client namespace to the measured service for %s s, client "
           "and server with Linux's default offloads (TSO on) for the run. CPU per GB: the "
           "whole machine's busy time in /proc/stat over the run (every CPU, iperf3's own "
           "work included: the node's is not separable) per GB received, all of it counted "
           "against forwarding. Loaded latency: %s keep-alive connections at a fixed %s "
           "requests/s, a third of what plain forwarding sustained closed-loop (%s/s), each "
           "request timed from when it was due (so stalls show), %s s a run. Short "
           "connections: a new TCP connection per request (the latency table above). CPU per "
           "million packets: CPU 1's kernel time (system, irq, softirq in /proc/stat) during "
           "the rate runs above, per million packets delivered: the node's receive path and "
           "dataplane plus the sink's ingress drop, at saturation." % (
               meta.get("bulk_seconds", "?"), meta.get("load_conns", "?"),
               fmt(lr) if lr else "?", fmt(res.get("load_max_rps")),
               meta.get("load_seconds", "?")), ""]
    out += ["| dataplane | services | bulk 1 stream, Gbit/s | bulk 4 streams, Gbit/s | "
            "CPU s/GB, 1 stream | CPU s/GB, 4 streams |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for dp, n in dps:
        out.append("| %s | %s | %s | %s | %s | %s |" % (dp, n, *[
            cell(g(m, dp, n), g(m, "plain", "1")) for m in
            ("bulk_gbps_p1", "bulk_gbps_p4", "bulk_cpu_s_per_gb_p1", "bulk_cpu_s_per_gb_p4")]))
    out += ["", "| dataplane | services | loaded p50, µs | loaded p99, µs | loaded p999, µs | "
            "achieved req/s | short conn. p50, µs | short conn. p99, µs |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for dp, n in dps:
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (dp, n, *[
            cell(g("load_latency_us", dp, n, k), g("load_latency_us", "plain", "1", k))
            for k in ("p50", "p99", "p999")], fmt(g("load_latency_us", dp, n, "achieved")), *[
            cell(g("latency_us", dp, n, k), g("latency_us", "plain", "1", k))
            for k in ("p50", "p99")]))
    out += ["", "| dataplane | services | CPU s per million packets, new flows | "
            "established flows |", "| --- | ---: | ---: | ---: |"]
    for dp in DATAPLANES:
        for n in SIZES:
            a, b = g("cpu_s_per_mpkt_new", dp, n), g("cpu_s_per_mpkt_est", dp, n)
            if a is None and b is None:
                continue
            out.append("| %s | %s | %s | %s |" % (
                dp, n, cell(a, g("cpu_s_per_mpkt_new", "plain", "1"), 3),
                cell(b, g("cpu_s_per_mpkt_est", "plain", "1"), 3)))
    return out + [""]


def scale_md(res, meta):
    kwall = res.get("update_wall_seconds", {}).get("kshift")
    out = ["## Cost against the number of services", "",
           "Installing every service (iptables-restore; nft -f%s; kshiftctl apply -f) and "
           "changing one service's weights, in seconds, each including its command's start; "
           "%s "
           "100,000 services are installed in a node namespace of their own, without traffic, "
           "nft in transactions of 1,000, each dataplane stopped after %s s. kshiftd's "
           "resident memory and its BPF maps' memlock (bpftool) at each size." % (
               " in transactions of %d" % meta["nft_chunk"] if meta["nft_chunk"] else "",
               "kshift's is kshiftd's own time (elapsed_us in its answer), and in brackets "
               "the time around kshiftctl." if kwall else "kshift's is measured around "
               "kshiftctl (this kshiftd's answers carry no timing).",
               meta.get("scale_timeout", "?")), ""]
    return out + scale_rows(res) + scale_flows(res, meta)


def scale_rows(res):
    """Install, update and memory against the number of services."""
    g = lambda m, dp, n: get(res, m, dp, n)
    to = res.get("install_timeout_seconds", {})
    failed = res.get("install_failed", {})

    def inst(dp):
        def f(n):
            if g("install_seconds", dp, n) is not None:
                w = g("install_wall_seconds", dp, n)
                return fmt(g("install_seconds", dp, n)) + ("" if w is None else " (%s)" % fmt(w))
            if to.get(dp, {}).get(n) is not None:
                part = res.get("install_partial_services", {}).get(dp, {}).get(n)
                return "> %s (stopped%s)" % (fmt(to[dp][n]), "" if part is None else
                                              ", %s installed" % "{:,.0f}".format(part))
            if failed.get(dp, {}).get(n) is not None:
                return "failed"
            return "–"
        return f

    def upd(dp, n):
        v, w = g("update_seconds", dp, n), g("update_wall_seconds", dp, n)
        return fmt(v) + ("" if w is None or v is None else " (%s)" % fmt(w))
    out = ["| services | install: iptables | nftables | kshift | one weight change: iptables "
           "| nftables | kshift | kshiftd RSS, MiB | kshift maps, MiB |",
           "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    kinst = lambda n: (inst("kshift-tc")(n) if g("install_seconds", "kshift-tc", n) is not None
                       or n not in res.get("install_seconds", {}).get("kshift-xdp", {})
                       else inst("kshift-xdp")(n))
    for n in SCALE:
        rss = g("kshiftd_rss_kb", "kshift-tc", n)
        mem = g("map_memlock_bytes", "kshift-tc", n)
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            "{:,}".format(int(n)), inst("iptables")(n), inst("nftables")(n), kinst(n),
            fmt(g("update_seconds", "iptables", n)), fmt(g("update_seconds", "nftables", n)),
            upd("kshift", n),
            fmt(rss / 1024) if rss else "–", fmt(mem / 2**20) if mem else "–"))
    return out


def scale_flows(res, meta):
    failed = res.get("install_failed", {})
    out = []
    kfail = sorted(failed.get("kshift-tc", {}), key=int)
    if kfail:
        out += ["", "kshift failed at %s services%s." % (
            ", ".join("{:,}".format(int(n)) for n in kfail),
            "" if meta.get("max_services_flag") else ": its maps hold 16,384 services "
            "(KS_MAX_SERVICES) and this kshiftd has no --max-services yet")]
    flows = res.get("kshiftd_rss_kb_flows", {}).get("kshift-tc", {})
    if flows:
        out += ["", "After new flows through the 10,000-service network (one SYN each; the "
                "connection table is a preallocated hash of %s entries, two per flow%s):" % (
                    fmt(max(res.get("conns_max_entries", {}).get("kshift-tc", {}).values() or
                            [0])),
                    "" if meta.get("max_flows_flag") else "; kshiftd has no --max-flows yet, "
                    "so its size is fixed at build time"), "",
                "| flows | kshiftd RSS, MiB | kshift maps, MiB |", "| ---: | ---: | ---: |"]
        for f in sorted(flows, key=int):
            mem = res.get("map_memlock_bytes_flows", {}).get("kshift-tc", {}).get(f)
            out.append("| %s | %s | %s |" % ("{:,}".format(int(f)), fmt(flows[f] / 1024),
                                             fmt(mem / 2**20) if mem else "–"))
    return out + [""]


def readme_md(res, meta, wall):
    """The README's Benchmark tables, in its layout, from this run: pasted as they are."""
    g = lambda m, dp, n="10000", k=None: get(res, m, dp, n, k)
    cols = ["iptables", "nftables", "kshift-xdp", "kshift-tc"]
    name = {"kshift-xdp": "kshift XDP", "kshift-tc": "kshift TC"}
    kshift = lambda m, dp: "kshift" if m.startswith("update") and dp.startswith("kshift") else dp
    lat = lambda v: "–" if v is None else "%s / %s" % (fmt(v["p50"]), fmt(v["p99"]))
    date = res["date"][:10]
    out = ["`%s` on %s (%d s), %s, kernel %s, %s, %s; load average %s at the start:" % (
        "make bench-quick" if meta["quick"] else "make bench", date, wall, res["machine"],
        res["kernel"], meta["iptables"], "one run per number" if meta["reps"] == 1 else
        "median of %d rounds of %g s" % (meta["reps"], meta["seconds"]), meta["loadavg"]), "",
        "| at 10,000 services | " + " | ".join(name.get(d, d) for d in cols) +
        " | plain forwarding (1 route) |", "| --- |" + " ---: |" * (len(cols) + 1)]
    rows = [("new flows/s", "new_flows_per_s", fmt),
            ("established packets/s", "established_pps", fmt),
            ("HTTP latency p50 / p99, µs", "latency_us", lat),
            ("change one service's weights, s" + (" (kshift: kshiftd's own time)" if g(
                "update_wall_seconds", "kshift") else ""), "update_seconds", fmt),
            ("the same around kshiftctl, s", "update_wall_seconds", fmt),
            ("install all services, s" + (" (kshift: kshiftd's own time)" if g(
                "install_wall_seconds", "kshift-tc") else ""), "install_seconds", fmt),
            ("the same around kshiftctl, s", "install_wall_seconds", fmt)]
    for label, m, f in rows:
        cells = [g(m, kshift(m, d)) for d in cols]
        if all(c is None for c in cells):
            continue
        p = g(m, "plain", "1")
        out.append("| %s | %s | %s |" % (label, " | ".join(
            "–" if c is None else f(c) for c in cells), "–" if p is None else f(p)))
    out += ["", "| ratio at 10,000 services | ÷ iptables | ÷ nftables | ÷ plain |",
            "| --- | ---: | ---: | ---: |"]
    for k in ("kshift-xdp", "kshift-tc"):
        for m, t in (("new_flows_per_s", "new flows/s"),
                     ("established_pps", "established packets/s")):
            v = g(m, k)
            out.append("| %s %s | %s | %s | %s |" % (name[k], t, ratio(v, g(m, "iptables")),
                                                     ratio(v, g(m, "nftables")),
                                                     ratio(v, g(m, "plain", "1"))))
    u = g("update_seconds", "kshift")
    out.append("| kshift weight change, kshiftd's own time (their time ÷ ours) | %s | %s | – |"
               % (ratio(g("update_seconds", "iptables"), u),
                  ratio(g("update_seconds", "nftables"), u)))
    uw = g("update_wall_seconds", "kshift")
    if uw:
        out.append("| kshift weight change around kshiftctl (their time ÷ ours) | %s | %s | – |"
                   % (ratio(g("update_seconds", "iptables"), uw),
                      ratio(g("update_seconds", "nftables"), uw)))
    feel = [("bulk, 1 stream, Gbit/s", "bulk_gbps_p1", None),
            ("bulk, 4 streams, Gbit/s", "bulk_gbps_p4", None),
            ("CPU s per GB, 1 stream", "bulk_cpu_s_per_gb_p1", None),
            ("CPU s per GB, 4 streams", "bulk_cpu_s_per_gb_p4", None),
            ("loaded latency p50, µs", "load_latency_us", "p50"),
            ("loaded latency p99, µs", "load_latency_us", "p99"),
            ("loaded latency p999, µs", "load_latency_us", "p999"),
            ("short connection p50, µs", "latency_us", "p50"),
            ("short connection p99, µs", "latency_us", "p99"),
            ("CPU s per million packets, new flows", "cpu_s_per_mpkt_new", None),
            ("CPU s per million packets, established", "cpu_s_per_mpkt_est", None)]
    for n, title, which in (("10000", "at 10,000 services (ratio to plain)", feel),
                            ("1", "at 1 service (ratio to plain)", feel[:2] + feel[4:7])):
        out += ["", "| %s | plain forwarding (1 route) | %s |" % (
            title, " | ".join(name.get(d, d) for d in cols)), "| --- |" + " ---: |" * 5]
        for label, m, k in which:
            p = g(m, "plain", "1", k)
            out.append("| %s | %s | %s |" % (label, "–" if p is None else fmt(p), " | ".join(
                cell(g(m, d, n, k), p) for d in cols)))
    lr = res.get("load_rate_rps")
    out += ["", "Loaded latency at %s requests/s (a third of plain forwarding's %s, closed "
            "loop)." % (fmt(lr) if lr else "?", fmt(res.get("load_max_rps"))), "",
            "Cost against the number of services (seconds include starting the command; "
            "kshift's is kshiftd's own time, in brackets around kshiftctl):", ""]
    out += scale_rows(res)
    flows = res.get("kshiftd_rss_kb_flows", {}).get("kshift-tc", {})
    if flows:
        out += ["", "After new flows: " + ", ".join(
            "%s flows: %s MiB RSS, %s MiB of maps" % (
                "{:,}".format(int(f)), fmt(flows[f] / 1024),
                fmt((res.get("map_memlock_bytes_flows", {}).get("kshift-tc", {}).get(f) or 0)
                    / 2**20)) for f in sorted(flows, key=int)) + "."]
    return out


def chart(out, res):
    """Two panels: new flows/s against services, and what services cost (install and
    weight-update seconds) against services."""
    nf = res.get("new_flows_per_s", {})
    dat = os.path.join(out, "new_flows.dat")
    series = [dp for dp in DATAPLANES[1:] if nf.get(dp)]
    with open(dat, "w") as f:
        f.write("# services " + " ".join(series) + "\n")
        for n in SIZES:
            f.write(n + " " + " ".join(str(nf[dp].get(n, "NaN")) for dp in series) + "\n")
    plots = ['"%s" using 1:%d with linespoints lw 2 pt 7 title "%s"' % (dat, i + 2, dp)
             for i, dp in enumerate(series)]
    plain = nf.get("plain", {}).get("1")
    if plain:
        plots.append('%f with lines dt 2 lw 2 lc rgb "gray40" title "plain forwarding (limit)"'
                     % plain)
    if not plots:
        return
    # panel 2: seconds to install all services and to change one, per dataplane
    sizes = sorted({n for m in ("install_seconds", "update_seconds")
                    for by_n in res.get(m, {}).values() for n in by_n}, key=int)
    cost = os.path.join(out, "cost.dat")
    cols = [("install_seconds", "iptables"), ("install_seconds", "nftables"),
            ("install_seconds", "kshift-tc"), ("update_seconds", "iptables"),
            ("update_seconds", "nftables"), ("update_seconds", "kshift")]
    with open(cost, "w") as f:
        f.write("# services " + " ".join("%s:%s" % c for c in cols) + "\n")
        for n in sizes:
            f.write(n + " " + " ".join(str(get(res, m, dp, n) or "NaN") for m, dp in cols)
                    + "\n")
    colour = {"iptables": 1, "nftables": 2, "kshift-tc": 4, "kshift": 4}
    cplots = ['"%s" using 1:%d with linespoints lw 2 pt %d dt %d lc %d title "%s %s"' % (
        cost, i + 2, 7 if m == "install_seconds" else 6, 1 if m == "install_seconds" else 2,
        colour[dp], dp.replace("kshift-tc", "kshift"),
        "install all" if m == "install_seconds" else "change one")
        for i, (m, dp) in enumerate(cols) if any(get(res, m, dp, n) for n in sizes)]
    # installs stopped at the time limit: lower bounds, drawn as such
    stopped = [(n, v, dp) for dp, by_n in res.get("install_timeout_seconds", {}).items()
               for n, v in by_n.items()]
    if stopped:
        sdat = os.path.join(out, "stopped.dat")
        with open(sdat, "w") as f:
            f.write("# services seconds dataplane: install stopped at the time limit\n")
            for n, v, dp in stopped:
                f.write("%s %s %s\n" % (n, v, dp))
        cplots.append('"%s" using 1:2 with points pt 9 ps 2 lc rgb "black" '
                      'title "install stopped at the limit (took longer)"' % sdat)
    script = [
        'set terminal pngcairo size 1400,560 font "sans,11"' if has_cairo() else
        "set terminal png size 1400,560",
        'set output "%s"' % os.path.join(out, "new_flows.png"),
        "set multiplot layout 1,2",
        'set title "New flows per second vs. number of services (higher is better)"',
        'set xlabel "services installed (the last one is measured)"',
        'set ylabel "new flows / s delivered"',
        "set logscale xy", "set xrange [0.5:20000]", "set yrange [1000:*]",
        "set xtics (\"1\" 1, \"1,000\" 1000, \"10,000\" 10000)",
        "set format y \"%.0s%c\"", "set grid", "set key bottom left box opaque",
        "plot " + ", ".join(plots)]
    if cplots:
        script += [
            'set title "What services cost: seconds to install all, to change one (lower is '
            'better)"', 'set xlabel "services installed"', 'set ylabel "seconds"',
            "set xrange [500:200000]", "set yrange [*:*]",
            "set xtics (\"1,000\" 1000, \"10,000\" 10000, \"100,000\" 100000)",
            'set format y "%g"', "set key bottom right box opaque",
            "plot " + ", ".join(cplots)]
    script += ["unset multiplot", ""]
    subprocess.run(["gnuplot"], input="\n".join(script).encode(), check=True)


def has_cairo():
    r = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True)
    return b"pngcairo" in r.stdout + r.stderr


def main():
    out, wall = sys.argv[1], int(sys.argv[2])
    with open(os.path.join(out, "meta.json")) as f:
        meta = json.load(f)
    samples = load(out)
    med = medians(samples)
    bench_prog = None
    bp = os.path.join(out, "bench-prog.txt")
    if os.path.exists(bp):
        with open(bp) as f:
            bench_prog = f.read()
    res = {
        "machine": machine(),
        "kernel": platform.release(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for metric in ("new_flows_per_s", "established_pps", "latency_us", "update_seconds",
                   "install_seconds", "update_wall_seconds", "install_wall_seconds",
                   # what users feel (issue #12)
                   "bulk_gbps_p1", "bulk_gbps_p4", "bulk_cpu_s_per_gb_p1",
                   "bulk_cpu_s_per_gb_p4", "load_latency_us", "cpu_s_per_mpkt_new",
                   "cpu_s_per_mpkt_est", "kshiftd_rss_kb", "map_memlock_bytes",
                   "kshiftd_rss_kb_flows", "map_memlock_bytes_flows", "conns_max_entries",
                   "install_timeout_seconds", "install_partial_services", "install_failed"):
        res[metric] = med.get(metric, {})
    res["load_max_rps"] = get(med, "load_max_rps", "plain", "1")
    res["load_rate_rps"] = get(med, "load_rate_rps", "plain", "1")
    res["start_seconds"] = {c: v.get("0") for c, v in med.get("start_seconds", {}).items()}
    res["generator"] = {
        "own_pps": get(med, "generator_pps", "generator", "0"),
        "direct_sink_pps": get(med, "direct_sink_pps", "direct", "1"),
    }
    res["settings"] = dict(meta, wall_seconds=wall)
    if bench_prog is not None:
        try:
            res["bench_prog"] = json.loads(bench_prog)
        except ValueError:
            res["bench_prog"] = bench_prog
    res["samples"] = samples
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(markdown(res, meta, wall, bench_prog))
    chart(out, res)


if __name__ == "__main__":
    main()
