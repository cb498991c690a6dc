#!/usr/bin/env python3
"""A backend for the end-to-end tests: answers every request with its own name.

    httpd.py --name stable --addr 198.18.2.2 --addr 2001:2:0:2::2 \
             --tcp 8080 [--udp 5353] [--ready-file F]

Serves HTTP/1.1 with keep-alive on every --addr at the --tcp port, and, with
--udp, echoes each datagram with its name at the --udp port. Every answer is
"NAME ADDR\n", ADDR being the local address that took the request, so a
client can tell which endpoint (and which backend) it reached, also through
a frontend that rewrites addresses. HTTP answers also carry X-Request-Count,
the number of requests served on that connection, so a keep-alive client can
prove that a later request rode the same server-side connection.

Only the standard library, so it runs in any namespace with python3.
"""
import argparse
import http.server
import ipaddress
import os
import socket
import socketserver
import sys
import threading


def family_of(addr):
    return socket.AF_INET6 if ipaddress.ip_address(addr).version == 6 else socket.AF_INET


def make_handler(name, addr):
    class Handler(http.server.BaseHTTPRequestHandler):
        # HTTP/1.1 keeps connections open between requests (keep-alive)
        protocol_version = "HTTP/1.1"
        # an idle keep-alive connection is closed after this, so no thread
        # outlives a test by much; longer than any wait in the tests
        timeout = 120

        def do_GET(self):
            # one handler instance serves one connection, so this counts the
            # requests on this connection
            self.served = getattr(self, "served", 0) + 1
            body = f"{name} {addr}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Backend", name)
            self.send_header("X-Request-Count", str(self.served))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            pass  # thousands of requests a test: keep the logs for errors

    return Handler


def make_server(addr, port, handler):
    class Server(http.server.ThreadingHTTPServer):
        address_family = family_of(addr)
        allow_reuse_address = True
        daemon_threads = True
        # socketserver's default backlog is 5: a burst of connects (the
        # keep-alive test opens 40 at once) would overflow it and a dropped
        # SYN costs a 1 s retransmission
        request_queue_size = 1024

        def server_bind(self):
            if self.address_family == socket.AF_INET6:
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            # not HTTPServer.server_bind: it looks its address up with
            # socket.getfqdn, a DNS query we must never send (and a 5 s wait)
            socketserver.TCPServer.server_bind(self)
            self.server_name, self.server_port = addr, port

    return Server((addr, port), handler)


def udp_echo(name, addr, port):
    s = socket.socket(family_of(addr), socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))

    def loop():
        body = f"{name} {addr}\n".encode()
        while True:
            try:
                _, peer = s.recvfrom(65535)
                s.sendto(body, peer)
            except OSError as e:
                print(f"httpd {name} {addr}: udp: {e}", file=sys.stderr)

    return s, loop


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True)
    p.add_argument("--addr", action="append", required=True)
    p.add_argument("--tcp", type=int, default=8080)
    p.add_argument("--udp", type=int)
    p.add_argument("--ready-file", help="written once every socket is bound")
    a = p.parse_args()

    threads = []
    for addr in a.addr:
        srv = make_server(addr, a.tcp, make_handler(a.name, addr))
        threads.append(threading.Thread(target=srv.serve_forever, daemon=True))
        if a.udp:
            _, loop = udp_echo(a.name, addr, a.udp)
            threads.append(threading.Thread(target=loop, daemon=True))
    # every socket is bound and listening before anyone is told we are ready
    for t in threads:
        t.start()
    if a.ready_file:
        with open(a.ready_file + ".tmp", "w") as f:
            f.write(f"{os.getpid()}\n")
        os.rename(a.ready_file + ".tmp", a.ready_file)
    threading.Event().wait()  # until killed


if __name__ == "__main__":
    main()
