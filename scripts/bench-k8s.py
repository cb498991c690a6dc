#!/usr/bin/env python3
"""The Kubernetes path's figures: from a patch at the API to the dataplane,
and kshiftd's memory and CPU with many Services under endpoint churn.

    bench-k8s.py objects N_SERVICES > objects.json
        N_SERVICES Services, each with one EndpointSlice of two endpoints,
        and one TrafficShift per pair of Services (frontend, backend)
    bench-k8s.py run --api URL --ca CA --token T --socket SOCK --pid PID
                     --shifts N [--patches 100] [--churn-rate 50] [--churn-seconds 30]
        times N patches from the API to kshiftd's answer (polled on its
        control socket every millisecond), then changes endpoints at the
        given rate while sampling kshiftd's RSS and CPU; prints JSON

Run by scripts/bench-k8s.sh, which builds the namespace, starts the fake
API server (tests/k8s/fakeapi.py) and kshiftd. Only the standard library.
"""
import argparse
import http.client
import json
import os
import socket
import ssl
import sys
import threading
import time

NS = "default"


def objects(n):
    items = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kshift-system"}}]
    for i in range(n):
        name = f"svc-{i}"
        ip = f"198.19.{i // 250}.{i % 250 + 1}"
        items.append({"apiVersion": "v1", "kind": "Service",
                      "metadata": {"name": name, "namespace": NS},
                      "spec": {"clusterIP": ip, "clusterIPs": [ip],
                               "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                          "targetPort": 8080}]}})
        items.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                      "metadata": {"name": f"{name}-a", "namespace": NS,
                                   "labels": {"kubernetes.io/service-name": name}},
                      "addressType": "IPv4",
                      "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                      "endpoints": [{"addresses": [f"198.18.2.{2 * (i % 100) + 2}"],
                                     "conditions": {"ready": True}},
                                    {"addresses": [f"198.18.2.{2 * (i % 100) + 3}"],
                                     "conditions": {"ready": True}}]})
    for j in range(n // 2):
        items.append({"apiVersion": "kshift.dev/v1alpha1", "kind": "TrafficShift",
                      "metadata": {"name": f"ts-{j}", "namespace": NS},
                      "spec": {"frontend": {"service": f"svc-{2 * j}"},
                               "backends": [{"name": "stable", "service": f"svc-{2 * j + 1}",
                                             "weight": 100},
                                            {"name": "canary", "service": f"svc-{2 * j}",
                                             "weight": 0}]}})
    return {"apiVersion": "v1", "kind": "List", "items": items}


class Api:
    def __init__(self, url, ca, token):
        host, port = url.split("//")[1].rsplit(":", 1)
        self.ctx = ssl.create_default_context(cafile=ca)
        self.host, self.port, self.token = host, int(port), token
        self.local = threading.local()

    def request(self, method, path, body=None, ctype="application/merge-patch+json"):
        c = getattr(self.local, "conn", None)
        if c is None:
            c = self.local.conn = http.client.HTTPSConnection(self.host, self.port,
                                                              context=self.ctx, timeout=10)
        c.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers={"Authorization": f"Bearer {self.token}", "Content-Type": ctype})
        r = c.getresponse()
        data = r.read()
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {r.status}: {data[:200]!r}")
        return json.loads(data)


def ctl(sock_path, req):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(sock_path)
    s.sendall(json.dumps(req).encode())
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    return json.loads(data)


def weights_of(sock_path, name):
    r = ctl(sock_path, {"cmd": "get", "namespace": NS, "name": name})
    try:
        return [b["weight"] for b in r["items"][0]["spec"]["backends"]]
    except (KeyError, IndexError, TypeError):
        return None


def proc_sample(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return ticks / os.sysconf("SC_CLK_TCK"), rss * 1024


def percentile(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def run(a):
    api = Api(a.api, a.ca, a.token)
    out = {"services": a.shifts * 2, "shifts": a.shifts}
    lat = []
    for i in range(a.patches):
        name = f"ts-{(i * 7919) % a.shifts}"
        w = [100 - (i % 2) * 50, (i % 2) * 50]
        # a no-op patch does not bump the generation: alternate weights
        cur = weights_of(a.socket, name)
        if cur == w:
            w = [w[0] - 1, w[1] + 1]
        body = {"spec": {"backends": [
            {"name": "stable", "service": f"svc-{2 * int(name[3:]) + 1}", "weight": w[0]},
            {"name": "canary", "service": f"svc-{2 * int(name[3:])}", "weight": w[1]}]}}
        t0 = time.monotonic()
        api.request("PATCH", f"/apis/kshift.dev/v1alpha1/namespaces/{NS}/trafficshifts/{name}",
                    body)
        while weights_of(a.socket, name) != w:
            if time.monotonic() - t0 > 10:
                raise RuntimeError(f"{name}: weights {w} not programmed after 10 s")
            time.sleep(0.001)
        lat.append((time.monotonic() - t0) * 1000)
    out["patch_to_dataplane_ms"] = {"n": len(lat), "median": round(percentile(lat, 50), 2),
                                    "p99": round(percentile(lat, 99), 2),
                                    "max": round(max(lat), 2)}

    # endpoint churn: flip one endpoint's readiness, a.churn_rate times a
    # second in all, from a few threads (one request waits for the fake's
    # answer; one thread alone cannot keep the pace)
    cpu0, rss0 = proc_sample(a.pid)
    t0 = time.monotonic()
    done = [0] * 4
    rss_max = [rss0]

    def churn(k):
        n = 0
        while time.monotonic() - t0 < a.churn_seconds:
            seq = n * len(done) + k
            i = seq % (a.shifts * 2)
            ready = (seq // (a.shifts * 2)) % 2 == 1
            api.request("PATCH",
                        f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices/svc-{i}-a",
                        {"endpoints": [{"addresses": [f"198.18.2.{2 * (i % 100) + 2}"],
                                        "conditions": {"ready": ready}},
                                       {"addresses": [f"198.18.2.{2 * (i % 100) + 3}"],
                                        "conditions": {"ready": True}}]})
            n += 1
            done[k] = n
            if k == 0 and n % 10 == 0:
                rss_max[0] = max(rss_max[0], proc_sample(a.pid)[1])
            sleep = t0 + n * len(done) / a.churn_rate - time.monotonic()
            if sleep > 0:
                time.sleep(sleep)

    threads = [threading.Thread(target=churn, args=(k,)) for k in range(len(done))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    n = sum(done)
    rss_max = rss_max[0]
    elapsed = time.monotonic() - t0
    time.sleep(1)  # let the last changes be applied
    cpu1, rss1 = proc_sample(a.pid)
    out["churn"] = {"changes": n, "seconds": round(elapsed, 1),
                    "rate_per_s": round(n / elapsed, 1),
                    "kshiftd_cpu_percent": round(100 * (cpu1 - cpu0) / (elapsed + 1), 1),
                    "kshiftd_rss_mib_before": round(rss0 / 2**20, 1),
                    "kshiftd_rss_mib_max": round(max(rss_max, rss1) / 2**20, 1)}
    print(json.dumps(out, indent=2))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("objects")
    o.add_argument("n", type=int)
    r = sub.add_parser("run")
    r.add_argument("--api", required=True)
    r.add_argument("--ca", required=True)
    r.add_argument("--token", required=True)
    r.add_argument("--socket", required=True)
    r.add_argument("--pid", type=int, required=True)
    r.add_argument("--shifts", type=int, required=True)
    r.add_argument("--patches", type=int, default=100)
    r.add_argument("--churn-rate", type=int, default=50)
    r.add_argument("--churn-seconds", type=float, default=30)
    a = ap.parse_args()
    if a.cmd == "objects":
        json.dump(objects(a.n), sys.stdout)
    else:
        run(a)


if __name__ == "__main__":
    main()
