#!/usr/bin/env python3
"""Load for make demo: new HTTP connections back to back, each from the next
of many client addresses, to URL, until STOP exists. One line per connection
to OUT: "TIME SOURCE VERSION" (VERSION is the backend's name from its answer,
or "failed"). Only the standard library; runs in the client namespace.

    demo-load.py URL OUT STOP SOURCE[,SOURCE...] [--workers N]
"""
import argparse
import os
import socket
import threading
import time
import urllib.parse


def one(host, port, src):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(2.0)
        s.bind((src, 0))
        s.connect((host, port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")
        data = b""
        while len(data) < 65536:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        body = data.partition(b"\r\n\r\n")[2].decode(errors="replace").split()
        return body[0] if body else "failed"
    except OSError:
        return "failed"
    finally:
        s.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("out")
    p.add_argument("stop")
    p.add_argument("sources")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--max-seconds", type=float, default=300)
    a = p.parse_args()
    u = urllib.parse.urlsplit(a.url)
    sources = a.sources.split(",")
    lock = threading.Lock()
    out = open(a.out, "a", buffering=1)
    end = time.time() + a.max_seconds

    def worker(k):
        i = k
        while not os.path.exists(a.stop) and time.time() < end:
            src = sources[i % len(sources)]
            i += a.workers
            v = one(u.hostname, u.port or 80, src)
            with lock:
                out.write(f"{time.time():.3f} {src} {v}\n")
            if v == "failed":
                time.sleep(0.05)

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(a.workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


if __name__ == "__main__":
    main()
