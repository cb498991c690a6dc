#!/usr/bin/env python3
"""The client side of the end-to-end tests: real connections, results as JSON.

    client.py split URL N [--save F | --reuse-ports F --of BACKEND] [--source A,B,...]
                                        N sequential new connections, one GET each
    client.py keepalive URL K --ready-file R --go-file G
                                        K persistent connections: a GET on each, then
                                        (once G exists) another GET on each
    client.py stream URL --stop-file F  new connections back to back until F exists
    client.py stream-check FILE --initial B [--switch T0 T1 B ...]
                                        judges a stream against the switches made
    client.py connect HOST PORT [--count N]   TCP connects: outcome and time taken
    client.py udp HOST PORT [--count N] [--connected] [--new-socket-each]

Backends answer "NAME ADDR\n" (see httpd.py); "backends" counts NAME and
"endpoints" counts "NAME ADDR". Errors are counted by errno name (or
exception name), never raised, so a test always gets a report. Every socket
operation has a timeout and every loop a bound, so a broken dataplane makes a
test fail, never hang. Only the standard library.
"""
import argparse
import errno
import http.client
import ipaddress
import json
import os
import socket
import sys
import threading
import time
import urllib.parse

TIMEOUT = 3.0  # per socket operation: one lost SYN (1 s retransmit) still fits
# A dataplane that blackholes would make every operation wait out TIMEOUT:
# loops give up after this many failures, so a broken kshift fails a test in
# seconds rather than hours (the report says "aborted")
MAX_FAILURES = 10


def err_name(e):
    """ECONNREFUSED, ETIMEDOUT, ... or the exception's class name."""
    if isinstance(e, socket.timeout):
        return "timeout"
    if isinstance(e, OSError) and e.errno:
        return errno.errorcode.get(e.errno, str(e.errno))
    return type(e).__name__


def split_url(url):
    u = urllib.parse.urlsplit(url)
    return u.hostname, u.port or 80, u.path or "/"


def family_of(host):
    return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET


def fmt_addr(addr, port):
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def count(d, key):
    d[key] = d.get(key, 0) + 1


def get_once(host, port, path, timeout=TIMEOUT, lport=0, ports=None, src=None):
    """One new connection, one GET, closed. Returns (body, error). lport:
    the source port to bind (0: the kernel's choice); ports: a list that
    gets the source port used.

    Plain HTTP/1.1 over a socket rather than http.client, so that the
    client reads until the server closes: the server's FIN comes first and
    the TIME_WAIT state stays on the server, and a later connection may
    bind the same source port (--reuse-ports)."""
    s = socket.socket(family_of(host), socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        if lport:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if lport or src:
            s.bind((src or ("::" if ":" in host else "0.0.0.0"), lport))
        s.connect((host, port))
        if ports is not None:
            ports.append(s.getsockname()[1])
        hosthdr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {hosthdr}\r\nConnection: close\r\n\r\n"
                  .encode())
        data = b""
        while len(data) < 65536:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if not sep:
            return None, "truncated" if data else "empty"
        status = head.split(b"\r\n", 1)[0].split()
        if len(status) < 2 or status[1] != b"200":
            return None, "HTTP" + (status[1].decode(errors="replace") if len(status) > 1 else "?")
        return body.decode(errors="replace").strip(), None
    except Exception as e:  # noqa: BLE001 - every failure is a result
        return None, err_name(e)
    finally:
        s.close()


def ports_held():
    """The local TCP ports this namespace's sockets hold, in any state:
    TIME_WAIT too, which a connection the client closed first (a keep-alive
    one) leaves for 60 s, and whose port cannot be bound again."""
    held = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                held |= {int(line.split()[1].rsplit(":", 1)[1], 16) for line in f}
        except OSError:
            pass
    return held


def cmd_split(a):
    host, port, path = split_url(a.url)
    backends, endpoints, errors, by_source = {}, {}, {}, {}
    failures = done = 0
    saved = []
    sources = [x for x in (a.source or "").split(",") if x]
    lports = []
    if a.reuse_ports:
        # source ports of earlier connections (that reached --of), so that
        # these new connections repeat their 5-tuples: a new connection all
        # the same, which must follow the current weights
        with open(a.reuse_ports) as f:
            lports = [p for p, b in json.load(f) if b and b.split()[0] == a.of]
        # the kernel's ephemeral ports wrap round within a run, so a later
        # connection may have used one of them again and may still hold it
        held = ports_held()
        lports = [p for p in lports if p not in held]
        a.n = min(a.n, len(lports))
    t0 = time.monotonic()
    for i in range(a.n):
        if failures >= a.max_failures:
            break
        done += 1
        used = []
        src = sources[i % len(sources)] if sources else None
        body, err = get_once(host, port, path, lport=lports[i] if lports else 0, ports=used,
                             src=src)
        if src:
            count(by_source.setdefault(src, {}), body if body else "error:" + err)
        saved.append([used[0] if used else None, body])
        if err:
            failures += 1
            count(errors, err)
            continue
        count(endpoints, body)
        count(backends, body.split()[0])
    if a.save:
        with open(a.save, "w") as f:
            json.dump(saved, f)
    # connections never tried count as failures: the report adds up
    out = {"total": a.n, "ok": done - failures, "failures": a.n - done + failures,
           "aborted": done < a.n,
           "backends": backends, "endpoints": endpoints, "errors": errors,
           "seconds": round(time.monotonic() - t0, 3)}
    if sources:
        out["sources"] = by_source
    print(json.dumps(out, sort_keys=True))


def wait_for_file(path, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.05)
    return False


def keepalive_request(c, path):
    """A GET on an open keep-alive connection: (body, request count, error)."""
    try:
        c.request("GET", path)
        r = c.getresponse()
        body = r.read().decode(errors="replace").strip()
        if r.status != 200:
            return None, None, f"HTTP{r.status}"
        return body, int(r.getheader("X-Request-Count", "0")), None
    except Exception as e:  # noqa: BLE001
        return None, None, err_name(e)


def cmd_keepalive(a):
    host, port, path = split_url(a.url)
    conns = []
    failures = 0
    for _ in range(a.k):
        c = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
        rec = {"first": None, "second": None, "count": None, "error": None, "lport": None}
        if failures >= MAX_FAILURES:
            rec["error"] = "aborted"
            conns.append((c, rec))
            continue
        body, _, err = keepalive_request(c, path)
        failures += bool(err)
        rec["first"], rec["error"] = body, err
        if c.sock:
            rec["lport"] = c.sock.getsockname()[1]
        # never reconnect behind our back: the second request must ride the
        # same TCP connection or fail
        c.auto_open = 0
        conns.append((c, rec))
    with open(a.ready_file + ".tmp", "w") as f:
        json.dump([r["first"] for _, r in conns], f)
    os.rename(a.ready_file + ".tmp", a.ready_file)

    go = wait_for_file(a.go_file, a.wait_max)
    for c, rec in conns:
        if rec["error"]:
            continue
        lport = c.sock.getsockname()[1] if c.sock else None
        body, n, err = keepalive_request(c, path)
        rec["second"], rec["count"], rec["error"] = body, n, err
        if not err and lport != rec["lport"]:
            rec["error"] = "reconnected"
        c.close()
    recs = [r for _, r in conns]
    kept = sum(1 for r in recs if not r["error"] and r["first"] == r["second"] and r["count"] == 2)
    out = {"total": a.k, "go": go, "kept": kept,
           "changed": sum(1 for r in recs if not r["error"] and r["first"] != r["second"]),
           "errors": sum(1 for r in recs if r["error"]),
           "first": {}, "conns": recs}
    for r in recs:
        if r["first"]:
            count(out["first"], r["first"].split()[0])
    print(json.dumps(out, sort_keys=True))


def cmd_stream(a):
    host, port, path = split_url(a.url)
    records = []
    lock = threading.Lock()
    deadline = time.monotonic() + a.max_seconds
    stop = threading.Event()

    def worker():
        while not stop.is_set() and time.monotonic() < deadline:
            t0 = time.time()  # wall clock: compared with `date +%s.%N` in the test
            body, err = get_once(host, port, path)
            t1 = time.time()
            with lock:
                records.append([t0, t1, body, err])
                if a.ready_file and not os.path.exists(a.ready_file) and body:
                    open(a.ready_file, "w").close()

    threads = [threading.Thread(target=worker) for _ in range(a.workers)]
    for t in threads:
        t.start()
    while time.monotonic() < deadline and not os.path.exists(a.stop_file):
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(TIMEOUT * 3)
    records.sort()
    print(json.dumps({"records": records}))


def cmd_stream_check(a):
    """Judges a stream against switches: each --switch T0 T1 B says that a
    switch to backend B was started at T0 and had returned at T1. A
    connection that ended before T0 must reach the previous backend, one that
    started after T1 must reach B, one that overlaps [T0, T1] may reach
    either; none may fail."""
    with open(a.file) as f:
        records = json.load(f)["records"]
    switches = [(float(t0), float(t1), b) for t0, t1, b in a.switch]
    phases = [a.initial] + [b for _, _, b in switches]
    per_phase = [{} for _ in phases]
    errors, violations = {}, []
    for t0, t1, body, err in records:
        if err:
            count(errors, err)
            continue
        got = body.split()[0]
        # phase: how many switches had returned before this connection began
        done = sum(1 for _, s1, _ in switches if t0 > s1)
        allowed = {phases[done]}
        # a connection that overlaps a switch in progress may see either side
        for i, (s0, s1, _) in enumerate(switches):
            if t1 >= s0 and t0 <= s1:
                allowed |= {phases[i], phases[i + 1]}
        count(per_phase[done], got)
        if got not in allowed:
            violations.append({"start": t0, "end": t1, "got": got, "allowed": sorted(allowed)})
    out = {"total": len(records), "failures": sum(errors.values()), "errors": errors,
           "phases": [{"expect": p, "got": g} for p, g in zip(phases, per_phase)],
           "violations": len(violations), "first_violations": violations[:5]}
    print(json.dumps(out, sort_keys=True))


def cmd_connect(a):
    results = []
    for _ in range(a.count):
        s = socket.socket(family_of(a.host), socket.SOCK_STREAM)
        s.settimeout(a.timeout)
        t0 = time.monotonic()
        try:
            s.connect((a.host, a.port))
            res = "connected"
        except Exception as e:  # noqa: BLE001
            res = err_name(e)
        results.append({"result": res, "seconds": round(time.monotonic() - t0, 4)})
        s.close()
    out = {"results": results, "max_seconds": max(r["seconds"] for r in results),
           "outcomes": {}}
    for r in results:
        count(out["outcomes"], r["result"])
    print(json.dumps(out, sort_keys=True))


def cmd_udp(a):
    fam = family_of(a.host)
    backends, endpoints, sources, errors = {}, {}, {}, {}
    replies = 0
    t_max = 0.0
    s = None
    failures = 0
    for i in range(a.count):
        if failures >= MAX_FAILURES:
            count(errors, "aborted")
            continue
        if s is None or a.new_socket_each:
            if s:
                s.close()
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.settimeout(a.timeout)
            if a.connected:
                s.connect((a.host, a.port))
        t0 = time.monotonic()
        try:
            msg = f"ping {i}".encode()
            if a.connected:
                s.send(msg)
                data = s.recv(65535)
                # a connected socket only accepts datagrams from its peer, so
                # any reply proves the source was HOST:PORT
                src = (a.host, a.port)
            else:
                s.sendto(msg, (a.host, a.port))
                data, src = s.recvfrom(65535)
            body = data.decode(errors="replace").strip()
            replies += 1
            count(sources, fmt_addr(src[0], src[1]))
            count(endpoints, body)
            count(backends, body.split()[0])
        except Exception as e:  # noqa: BLE001
            count(errors, err_name(e))
            failures += 1
        t_max = max(t_max, time.monotonic() - t0)
    if s:
        s.close()
    out = {"sent": a.count, "replies": replies, "sources": sources, "backends": backends,
           "endpoints": endpoints, "errors": errors, "max_seconds": round(t_max, 4)}
    print(json.dumps(out, sort_keys=True))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("split")
    s.add_argument("url")
    s.add_argument("n", type=int)
    s.add_argument("--max-failures", type=int, default=MAX_FAILURES)
    s.add_argument("--save", metavar="FILE", help="[source port, answer] of each connection")
    s.add_argument("--reuse-ports", metavar="FILE",
                   help="bind to the source ports saved in FILE (at most N)")
    s.add_argument("--of", metavar="BACKEND", help="with --reuse-ports: only ports that reached it")
    s.add_argument("--source", metavar="ADDR[,ADDR...]",
                   help="source addresses, one per connection in turn; the report's \"sources\" "
                   "counts each one's answers")
    s.set_defaults(fn=cmd_split)

    s = sub.add_parser("keepalive")
    s.add_argument("url")
    s.add_argument("k", type=int)
    s.add_argument("--ready-file", required=True)
    s.add_argument("--go-file", required=True)
    s.add_argument("--wait-max", type=float, default=60)
    s.set_defaults(fn=cmd_keepalive)

    s = sub.add_parser("stream")
    s.add_argument("url")
    s.add_argument("--stop-file", required=True)
    s.add_argument("--ready-file")
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--max-seconds", type=float, default=60)
    s.set_defaults(fn=cmd_stream)

    s = sub.add_parser("stream-check")
    s.add_argument("file")
    s.add_argument("--initial", required=True)
    s.add_argument("--switch", nargs=3, action="append", default=[],
                   metavar=("T0", "T1", "BACKEND"))
    s.set_defaults(fn=cmd_stream_check)

    s = sub.add_parser("connect")
    s.add_argument("host")
    s.add_argument("port", type=int)
    s.add_argument("--count", type=int, default=1)
    s.add_argument("--timeout", type=float, default=TIMEOUT)
    s.set_defaults(fn=cmd_connect)

    s = sub.add_parser("udp")
    s.add_argument("host")
    s.add_argument("port", type=int)
    s.add_argument("--count", type=int, default=1)
    s.add_argument("--connected", action="store_true")
    s.add_argument("--new-socket-each", action="store_true")
    s.add_argument("--timeout", type=float, default=2.0)
    s.set_defaults(fn=cmd_udp)

    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
