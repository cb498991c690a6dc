#!/usr/bin/env python3
"""Server and client of the shadow traffic test (test_shadow.sh).

    shadowd.py serve --name N --addr A --tcp P [--udp P] --log F --ready-file R
                     [--differ S]
        HTTP/1.1 (keep-alive) for GET and POST, answering "NAME ADDR\\n" (or,
        when the path contains S, a 500 of another length); every request
        is logged as "METHOD PATH BODYLEN SHA256" to F, every UDP datagram
        as "UDP SHA256", and datagrams are echoed back.
    shadowd.py load URL --requests N --log F [--keepalive K] [--bodies]
                    [--differ-every M --differ S] [--rate R]
        N requests: K keep-alive connections and the rest on a connection
        each, GET and POST (with --bodies, bodies of 1 byte to 1 MB); the
        requests sent are logged to F like the server logs them. Prints
        JSON: ok, failed, answers by backend name, latency p50/p99 (ms).
    shadowd.py udp HOST PORT --count N --log F
        N datagrams, each answered or not within a short wait; prints JSON:
        sent, answers by source address.

Only the standard library.
"""
import argparse
import hashlib
import http.client
import http.server
import json
import os
import random
import socket
import socketserver
import sys
import threading
import time

TIMEOUT = 5.0


def serve(a):
    lock = threading.Lock()
    log = open(a.log, "a", buffering=1)

    def record(line):
        with lock:
            log.write(line + "\n")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 60
        # headers and body go in two writes: without this, Nagle's
        # algorithm holds the body for the client's delayed ACK (40 ms)
        disable_nagle_algorithm = True

        def answer(self, body):
            record(f"{self.command} {self.path} {len(body)} {hashlib.sha256(body).hexdigest()}")
            if a.differ and a.differ in self.path:
                out = f"{a.name} {a.addr} differs\n".encode()
                self.send_response(500)
            else:
                out = f"{a.name} {a.addr}\n".encode()
                self.send_response(200)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def do_GET(self):
            self.answer(b"")

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = b""
            while len(body) < n:
                chunk = self.rfile.read(n - len(body))
                if not chunk:
                    break
                body += chunk
            self.answer(body)

        def log_message(self, fmt, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = 1024

        def server_bind(self):
            socketserver.TCPServer.server_bind(self)
            self.server_name, self.server_port = a.addr, a.tcp

    srv = Server((a.addr, a.tcp), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    if a.udp:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind((a.addr, a.udp))

        def echo():
            while True:
                d, peer = u.recvfrom(65535)
                record(f"UDP {hashlib.sha256(d).hexdigest()}")
                u.sendto(f"{a.name} {a.addr}\n".encode(), peer)

        threading.Thread(target=echo, daemon=True).start()
    open(a.ready_file, "w").close()
    while True:
        time.sleep(3600)


def body_of(i, bodies):
    """A body of 1 byte to 1 MB for some requests, none for the rest."""
    if not bodies or i % 3 == 0:
        return None
    size = [1, 100, 1460, 5000, 70000, 300000, 1 << 20][i % 7]
    rnd = random.Random(i)
    block = bytes(rnd.getrandbits(8) for _ in range(min(size, 4096)))
    return (block * (size // len(block) + 1))[:size]


def load(a):
    host, port = a.url.split("//")[1].split("/")[0].split(":")
    port = int(port)
    log = open(a.log, "w", buffering=1)
    lock = threading.Lock()
    res = {"ok": 0, "failed": 0, "answers": {}, "errors": {}, "lat": []}

    def one(conn, i):
        path = f"/r{i}"
        if a.differ and a.differ_every and i % a.differ_every == 0:
            path += a.differ
        body = body_of(i, a.bodies)
        t0 = time.monotonic()
        try:
            if body is None:
                conn.request("GET", path)
            else:
                conn.request("POST", path, body=body)
            r = conn.getresponse()
            data = r.read()
            lat = time.monotonic() - t0
            with lock:
                b = body or b""
                log.write(f"{'GET' if body is None else 'POST'} {path} {len(b)} "
                          f"{hashlib.sha256(b).hexdigest()}\n")
                name = data.decode(errors="replace").split(" ")[0]
                res["answers"][name] = res["answers"].get(name, 0) + 1
                if r.status == 200 or (a.differ and a.differ in path):
                    res["ok"] += 1
                else:
                    res["failed"] += 1
                res["lat"].append(lat)
            return True
        except Exception as e:
            with lock:
                res["failed"] += 1
                k = type(e).__name__
                res["errors"][k] = res["errors"].get(k, 0) + 1
            return False

    interval = 1.0 / a.rate if a.rate else 0
    start = time.monotonic()
    # keep-alive connections: requests spread over them, one thread each
    ka = min(a.keepalive, a.requests)
    per = [list(range(j, a.requests, max(ka, 1) + 1)) for j in range(ka)] if ka else []
    kept = {i for p in per for i in p}
    short = [i for i in range(a.requests) if i not in kept]

    def keepalive(ids):
        conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
        for i in ids:
            if not one(conn, i):
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
        conn.close()

    threads = [threading.Thread(target=keepalive, args=(p,)) for p in per]
    for t in threads:
        t.start()
    for n, i in enumerate(short):
        if interval:
            delay = start + n * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
        one(conn, i)
        conn.close()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    lat = sorted(res.pop("lat"))
    res["p50_ms"] = round(1000 * lat[len(lat) // 2], 3) if lat else None
    res["p99_ms"] = round(1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))], 3) if lat else None
    res["rate"] = round(len(lat) / elapsed, 1) if elapsed else 0
    print(json.dumps(res))


def udp(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    log = open(a.log, "w", buffering=1)
    res = {"sent": 0, "answers": {}}
    for i in range(a.count):
        d = f"datagram {i} ".encode() * (1 + i % 5)
        s.sendto(d, (a.host, a.port))
        log.write(f"UDP {hashlib.sha256(d).hexdigest()}\n")
        res["sent"] += 1
        try:
            while True:
                data, peer = s.recvfrom(65535)
                k = f"{peer[0]}:{peer[1]}"
                res["answers"][k] = res["answers"].get(k, 0) + 1
                s.settimeout(0.05)
        except socket.timeout:
            s.settimeout(0.5)
    print(json.dumps(res))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--name", required=True)
    s.add_argument("--addr", required=True)
    s.add_argument("--tcp", type=int, required=True)
    s.add_argument("--udp", type=int)
    s.add_argument("--log", required=True)
    s.add_argument("--ready-file", required=True)
    s.add_argument("--differ")
    c = sub.add_parser("load")
    c.add_argument("url")
    c.add_argument("--requests", type=int, required=True)
    c.add_argument("--keepalive", type=int, default=0)
    c.add_argument("--bodies", action="store_true")
    c.add_argument("--differ")
    c.add_argument("--differ-every", type=int, default=0)
    c.add_argument("--rate", type=float, default=0)
    c.add_argument("--log", required=True)
    u = sub.add_parser("udp")
    u.add_argument("host")
    u.add_argument("port", type=int)
    u.add_argument("--count", type=int, required=True)
    u.add_argument("--log", required=True)
    a = p.parse_args()
    {"serve": serve, "load": load, "udp": udp}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
