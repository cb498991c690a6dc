#!/usr/bin/python3
"""fakeapi.py: a fake Kubernetes API server for kshift's tests, speaking the
real protocol (HTTPS, HTTP/1.1 keep-alive, JSON, chunked watch streams) well
enough for kubectl 1.32, curl and kshiftd's libcurl client.

  python3 tests/k8s/fakeapi.py --dir DIR [--port 0] [--host 127.0.0.1]
      [--token TOKEN] [--san IP|DNS ...] [--data FILE.json|FILE.yaml]
      [--bookmark-interval SECONDS] [--history N] [--verbose]

DIR receives (made once, kept if present):
  ca.crt ca.key server.crt server.key client.crt client.key   openssl CLI
  tokens       valid bearer tokens, one a line, re-read on every request
               (rewrite it to rotate); --token, or a random one, at first
  token        the first token alone (for a kubeconfig tokenFile)
  admin-token  the token that may also use /fake/ (never rotated)
  kubeconfig   contexts "fake" (token, the current one), "fake-certs"
               (client certificate CN=kshift-test, O=system:masters) and
               "fake-tokenfile" (tokenFile: DIR/token); namespace default
  port         the port, written once listening (after kubeconfig)
  requests.log one line a request: "METHOD PATH?QUERY STATUS WHO"

What it serves:
  /version /healthz /readyz /livez (no auth); /api /api/v1 /apis
  /apis/G/V: plain discovery documents (no aggregated discovery: the
  Accept header asking for it gets plain JSON, and client-go falls back);
  /openapi/v2 and /openapi/v3 answer 404 (kubectl then works without).
  Resources: v1 namespaces, services (+status); discovery.k8s.io/v1
  endpointslices; coordination.k8s.io/v1 leases; kshift.dev/v1alpha1
  trafficshifts (short name ts, +status). Verbs get, list (namespaced and
  all namespaces, labelSelector with = == != in notin exists !exists,
  fieldSelector metadata.name/metadata.namespace, limit/continue paging
  over a snapshot taken by the first page), watch, create, update (PUT),
  patch, delete. Objects in a namespace that does not exist are refused
  (404), as the real API does; default, kube-system and kube-public exist.
  Deleting a namespace deletes what is in it at once (no Terminating).
  - resourceVersion: one global counter; uid, creationTimestamp set on
    create; generation starts at 1 and grows when anything but metadata
    and status changes. A write that changes nothing is a no-op (same
    resourceVersion, no event), as in the real API.
  - Stale metadata.resourceVersion in PUT or PATCH, or in a DELETE's
    preconditions: 409 Conflict. POST of an existing name: 409
    AlreadyExists.
  - Status subresource (trafficshifts, services, namespaces): PUT/PATCH on
    .../NAME/status changes only .status; the main resource ignores .status.
  - PATCH types: application/merge-patch+json (RFC 7386);
    application/strategic-merge-patch+json as a merge patch, except that
    "$..." directives are dropped and lists named ports/conditions merge by
    port/type; anything else (json-patch, apply-patch) 415.
  - Watch (?watch=1|true): chunked, one {"type","object"} JSON a line.
    resourceVersion absent or "0": ADDED for every current object first;
    otherwise the events after it from the history (last --history events,
    default 1000); an older one: HTTP 410 Expired. allowWatchBookmarks=true
    adds a BOOKMARK every --bookmark-interval seconds (default 1, 0 off).
    The stream ends cleanly after timeoutSeconds (default 1800).
    kubectl's Table Accept header gets plain objects (kubectl prints them).
Not implemented: RBAC, admission, schema validation beyond name/kind,
generateName, server-side apply, json-patch, deleteCollection,
finalizers, a selector's DELETED when an object leaves it, HTTP/2.

Fault injection and inspection: /fake/ACTION, with the admin token only
(Authorization: Bearer $(cat DIR/admin-token)); POST unless said:
  /fake/drop-watches          close every open watch stream abruptly (TCP
                              shutdown, no final chunk)
  /fake/gone?resource=R&count=N   the next N (default 1) watch requests for
                              resource R (plural; absent: any) answer HTTP 410
  /fake/error-410             an ERROR event (Status 410 Expired) into every
                              open watch, then end those streams
  /fake/compact               forget the event history and the list
                              snapshots: older resourceVersions and continue
                              tokens now get 410
  /fake/conflict?count=N      the next N mutating requests answer 409
  /fake/fail?count=N&code=C   the next N resource requests (any verb)
                              answer C (default 500) with a Status
  /fake/bookmarks?interval=S  change the bookmark interval (0: none)
  GET /fake/log               the request log as text
  GET /fake/counters          JSON: {"VERB RESOURCE": n, ..., "open_watches": n}
  /fake/reset                 empty the log and counters
"""
import argparse
import base64
import copy
import datetime
import json
import os
import re
import secrets
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Res:
    def __init__(self, group, version, plural, kind, namespaced, short=(), status=False):
        self.group, self.version, self.plural, self.kind = group, version, plural, kind
        self.namespaced, self.short, self.status = namespaced, list(short), status
        self.api_version = f"{group}/{version}" if group else version
        self.gr = f"{plural}.{group}" if group else plural
        self.verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]


RESOURCES = [
    Res("", "v1", "namespaces", "Namespace", False, ["ns"], status=True),
    Res("", "v1", "services", "Service", True, ["svc"], status=True),
    Res("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    Res("coordination.k8s.io", "v1", "leases", "Lease", True),
    Res("kshift.dev", "v1alpha1", "trafficshifts", "TrafficShift", True, ["ts"], status=True),
]
BY_GV = {}
for _r in RESOURCES:
    BY_GV.setdefault((_r.group, _r.version), {})[_r.plural] = _r
BY_KIND = {(r.api_version, r.kind): r for r in RESOURCES}
SMP_MERGE_KEYS = {"ports": "port", "conditions": "type"}


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details


def status_obj(code, reason, message, details=None):
    st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
          "message": message, "reason": reason, "code": code}
    if details:
        st["details"] = details
    return st


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target, patch, strategic=False):
    """RFC 7386; strategic: drop $-directives, merge keyed lists."""
    if not isinstance(patch, dict):
        if strategic and isinstance(patch, list):
            return [strip_directives(x) for x in patch]
        return patch
    if strategic and patch.get("$patch") == "replace":
        return strip_directives(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if strategic and k.startswith("$"):
            continue
        if v is None:
            result.pop(k, None)
        elif (strategic and k in SMP_MERGE_KEYS and isinstance(v, list)
              and isinstance(result.get(k), list)):
            result[k] = merge_keyed_list(result[k], v, SMP_MERGE_KEYS[k])
        else:
            result[k] = merge_patch(result.get(k), v, strategic)
    return result


def strip_directives(v):
    if isinstance(v, dict):
        return {k: strip_directives(x) for k, x in v.items() if not k.startswith("$")}
    if isinstance(v, list):
        return [strip_directives(x) for x in v]
    return v


def merge_keyed_list(old, patch, key):
    if not all(isinstance(x, dict) and key in x for x in old + patch):
        return [strip_directives(x) for x in patch]
    out = [dict(x) for x in old]
    for p in patch:
        idx = next((i for i, x in enumerate(out) if x.get(key) == p[key]), None)
        if p.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
        elif idx is None:
            out.append(strip_directives(p))
        else:
            out[idx] = merge_patch(out[idx], p, True)
    return out


_SEL_SET = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_SEL_EQ = re.compile(r"^\s*(!?)([\w./-]+)\s*(?:(==|=|!=)\s*([\w.-]*))?\s*$")


def parse_label_selector(s):
    """A list of predicates on a labels dict; ApiError 400 when malformed."""
    preds, depth, cur = [], 0, ""
    terms = []
    for ch in s or "":
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    terms.append(cur)
    for t in terms:
        if not t.strip():
            continue
        m = _SEL_SET.match(t)
        if m:
            k, op, vals = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in":
                preds.append(lambda l, k=k, vals=vals: l.get(k) in vals)
            else:
                preds.append(lambda l, k=k, vals=vals: l.get(k) not in vals)
            continue
        m = _SEL_EQ.match(t)
        if not m or (m.group(1) and m.group(3)):
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {t!r}")
        neg, k, op, v = m.groups()
        if op in ("=", "=="):
            preds.append(lambda l, k=k, v=v: l.get(k) == v)
        elif op == "!=":
            preds.append(lambda l, k=k, v=v: l.get(k) != v)
        elif neg:
            preds.append(lambda l, k=k: k not in l)
        else:
            preds.append(lambda l, k=k: k in l)
    return preds


def parse_field_selector(s):
    preds = []
    for t in (s or "").split(","):
        if not t.strip():
            continue
        m = re.match(r"^\s*([\w.]+)\s*(==|=|!=)\s*(.*?)\s*$", t)
        if not m or m.group(1) not in ("metadata.name", "metadata.namespace"):
            raise ApiError(400, "BadRequest", f'"{t}" is not a known field selector: '
                           "only \"metadata.name\", \"metadata.namespace\"")
        f, op, v = m.groups()
        f = f.split(".")[1]
        if op == "!=":
            preds.append(lambda md, f=f, v=v: md.get(f, "") != v)
        else:
            preds.append(lambda md, f=f, v=v: md.get(f, "") == v)
    return preds


def pb_fields(b):
    """Protocol buffers wire format: [(field number, int or bytes)]."""
    def varint(i):
        v = shift = 0
        while True:
            v |= (b[i] & 0x7f) << shift
            shift += 7
            i += 1
            if not b[i - 1] & 0x80:
                return v, i
    out, i = [], 0
    while i < len(b):
        key, i = varint(i)
        if key & 7 == 0:
            v, i = varint(i)
        elif key & 7 == 2:
            n, i = varint(i)
            v, i = b[i:i + n], i + n
        else:
            n = 8 if key & 7 == 1 else 4
            v, i = b[i:i + n], i + n
        out.append((key >> 3, v))
    return out


def pb_namespace(raw):
    """kubectl create namespace sends protobuf: decode just that (a
    Namespace's name, labels and annotations); anything else 415."""
    unknown = dict(pb_fields(raw[4:]))
    kind = dict(pb_fields(unknown.get(1, b""))).get(2, b"").decode()
    if kind != "Namespace":
        raise ApiError(415, "UnsupportedMediaType", f"fakeapi decodes no protobuf {kind}: "
                       "send application/json")
    md = {"labels": {}, "annotations": {}}
    for f, v in pb_fields(dict(pb_fields(unknown.get(2, b""))).get(1, b"")):
        if f == 1:
            md["name"] = v.decode()
        elif f in (11, 12):
            kv = dict(pb_fields(v))
            md["labels" if f == 11 else "annotations"][kv[1].decode()] = kv.get(2, b"").decode()
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {k: v for k, v in md.items() if v}}


class Store:
    """Every object, the event history and the faults, under one lock."""

    def __init__(self, history):
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.objs = {r.plural: {} for r in RESOURCES}  # plural -> {(ns, name): obj}
        self.rv = 0
        self.events = deque(maxlen=history)  # (rv, plural, type, obj)
        self.compacted = 0  # events up to this rv are forgotten
        self.snapshots = {}  # continue id -> (rv, items)
        self.watches = set()
        self.faults = {"gone": {}, "conflict": 0, "fail": 0, "fail_code": 500}
        self.bookmark_interval = 1.0
        for ns in ("default", "kube-system", "kube-public"):
            self.create(BY_GV[("", "v1")]["namespaces"], None,
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    # --- writes (each takes the lock) -------------------------------------

    def _emit(self, res, etype, obj):
        """With the lock held: a new resourceVersion on obj, an event."""
        if len(self.events) == self.events.maxlen:
            self.compacted = self.events[0][0]
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.events.append((self.rv, res.plural, etype, copy.deepcopy(obj)))
        self.cond.notify_all()

    def _check_ns(self, res, ns):
        if res.namespaced and ("", ns) not in self.objs["namespaces"]:
            raise ApiError(404, "NotFound", f'namespaces "{ns}" not found',
                           {"name": ns, "kind": "namespaces"})

    def _get(self, res, ns, name):
        obj = self.objs[res.plural].get((ns or "", name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{res.gr} "{name}" not found',
                           {"name": name, "group": res.group, "kind": res.plural})
        return obj

    def _conflict(self, res, name):
        return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.gr} "{name}": '
                        "the object has been modified; please apply your changes to the "
                        "latest version and try again",
                        {"name": name, "group": res.group, "kind": res.plural})

    def _take_injected(self, res, name, mutating):
        if mutating and self.faults["conflict"] > 0:
            self.faults["conflict"] -= 1
            raise self._conflict(res, name or "")
        if self.faults["fail"] > 0:
            self.faults["fail"] -= 1
            code = self.faults["fail_code"]
            raise ApiError(code, "InternalError" if code >= 500 else "BadRequest",
                           f"injected failure {code}")

    def check_faults(self, res, name, mutating):
        with self.lock:
            self._take_injected(res, name, mutating)

    def create(self, res, ns, body):
        with self.lock:
            md = body.setdefault("metadata", {})
            name = md.get("name")
            if not name:
                raise ApiError(422, "Invalid", f"{res.kind}.{res.group or 'core'} is invalid: "
                               "metadata.name: Required value: name or generateName is "
                               "required", {"kind": res.kind})
            if res.namespaced:
                ns = ns or md.get("namespace") or "default"
                if md.get("namespace", ns) != ns:
                    raise ApiError(400, "BadRequest", "the namespace of the provided object "
                                   "does not match the namespace sent on the request")
                self._check_ns(res, ns)
                md["namespace"] = ns
            else:
                ns = ""
                md.pop("namespace", None)
            if (ns, name) in self.objs[res.plural]:
                raise ApiError(409, "AlreadyExists", f'{res.gr} "{name}" already exists',
                               {"name": name, "group": res.group, "kind": res.plural})
            body["apiVersion"], body["kind"] = res.api_version, res.kind
            for k in ("resourceVersion", "deletionTimestamp", "managedFields"):
                md.pop(k, None)
            md.update(uid=str(uuid.uuid4()), creationTimestamp=now_iso(), generation=1)
            if res.plural == "namespaces":
                body["status"] = {"phase": "Active"}
                body.setdefault("spec", {"finalizers": ["kubernetes"]})
            self.objs[res.plural][(ns, name)] = body
            self._emit(res, "ADDED", body)
            return copy.deepcopy(body)

    def update(self, res, ns, name, fn, subresource=None):
        """fn(current copy) -> new object; applies PUT/PATCH semantics."""
        with self.lock:
            old = self._get(res, ns, name)
            new = fn(copy.deepcopy(old))
            if not isinstance(new, dict):
                raise ApiError(400, "BadRequest", "the body is not an object")
            md = new.get("metadata") or {}
            want_rv = md.get("resourceVersion")
            if want_rv and want_rv != old["metadata"]["resourceVersion"]:
                raise self._conflict(res, name)
            if md.get("name", name) != name:
                raise ApiError(400, "BadRequest", "the name of the object "
                               f"({md.get('name')}) does not match the name on the URL ({name})")
            if subresource == "status":
                merged = copy.deepcopy(old)
                if "status" in new:
                    merged["status"] = new["status"]
                else:
                    merged.pop("status", None)
            else:
                merged = new
                if res.status:
                    if "status" in old:
                        merged["status"] = copy.deepcopy(old["status"])
                    else:
                        merged.pop("status", None)
                keep = {k: old["metadata"][k] for k in ("name", "namespace", "uid",
                        "creationTimestamp", "generation", "resourceVersion")
                        if k in old["metadata"]}
                merged["metadata"] = {**{k: v for k, v in md.items() if k != "managedFields"},
                                      **keep}
            merged["apiVersion"], merged["kind"] = res.api_version, res.kind
            if merged == old:
                return copy.deepcopy(old)

            def body_of(o):
                return {k: v for k, v in o.items() if k not in ("metadata", "status")}
            if body_of(merged) != body_of(old):
                merged["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
            self.objs[res.plural][(ns or "", name)] = merged
            self._emit(res, "MODIFIED", merged)
            return copy.deepcopy(merged)

    def delete(self, res, ns, name, precond_rv=None):
        with self.lock:
            old = self._get(res, ns, name)
            if precond_rv and precond_rv != old["metadata"]["resourceVersion"]:
                raise self._conflict(res, name)
            self._delete_locked(res, ns or "", name)
            if res.plural == "namespaces":
                for r in RESOURCES:
                    for key in [k for k in self.objs[r.plural] if r.namespaced and k[0] == name]:
                        self._delete_locked(r, *key)
            return old

    def _delete_locked(self, res, ns, name):
        obj = self.objs[res.plural].pop((ns, name))
        self._emit(res, "DELETED", obj)

    # --- reads ----------------------------------------------------------------

    def matches(self, obj, ns, lsel, fsel):
        md = obj.get("metadata", {})
        if ns and md.get("namespace") != ns:
            return False
        labels = md.get("labels") or {}
        return all(p(labels) for p in lsel) and all(p(md) for p in fsel)

    def list(self, res, ns, lsel, fsel, limit, cont):
        with self.lock:
            if cont:
                try:
                    tok = json.loads(base64.urlsafe_b64decode(cont.encode()))
                    rv, items = self.snapshots[tok["id"]]
                    start = int(tok["start"])
                except (KeyError, ValueError, TypeError):
                    raise ApiError(410, "Expired", "The provided continue parameter is too old "
                                   "to display a consistent list result. You can start a new "
                                   "list without the continue parameter.")
            else:
                rv, start = self.rv, 0
                items = [copy.deepcopy(o) for k, o in sorted(self.objs[res.plural].items())
                         if self.matches(o, ns, lsel, fsel)]
            meta = {"resourceVersion": str(rv)}
            page = items[start:start + limit] if limit else items[start:]
            end = start + len(page)
            if end < len(items):
                if not cont:
                    sid = secrets.token_hex(8)
                    self.snapshots[sid] = (rv, items)
                    while len(self.snapshots) > 200:
                        self.snapshots.pop(next(iter(self.snapshots)))
                else:
                    sid = tok["id"]
                meta["continue"] = base64.urlsafe_b64encode(
                    json.dumps({"id": sid, "start": end}).encode()).decode()
                if not lsel and not fsel:
                    meta["remainingItemCount"] = len(items) - end
            return {"kind": res.kind + "List", "apiVersion": res.api_version,
                    "metadata": meta, "items": page}

    def compact(self):
        with self.lock:
            self.compacted = self.rv
            self.events.clear()
            self.snapshots.clear()


class Watch:
    def __init__(self):
        self.drop = False
        self.error410 = False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakeapi/1"
    timeout = 300

    # --- plumbing ---------------------------------------------------------

    def log_message(self, fmt, *args):
        pass

    def log_request(self, code="-", size="-"):
        who = getattr(self, "who", "-")
        line = f"{now_iso()} {self.command} {self.path} {code} {who}"
        self.server.log(line)

    def send_json(self, code, obj, headers=()):
        data = json.dumps(obj).encode() + b"\n"
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_text(self, code, text):
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def json_body(self):
        raw = self.raw_body
        if not raw.strip():
            return None
        if raw.startswith(b"k8s\0"):
            return pb_namespace(raw)
        try:
            return json.loads(raw)
        except ValueError:
            ctype = self.headers.get("Content-Type") or ""
            if "yaml" in ctype:
                try:
                    import yaml
                    return yaml.safe_load(raw)
                except Exception:
                    pass
            raise ApiError(400, "BadRequest", "the body of the request was in an unknown "
                           "format - accepted media types include: application/json")

    def authenticate(self):
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Bearer "):
            tok = auth[7:].strip()
            if tok and tok == self.server.admin_token:
                self.who = "admin"
                return "admin"
            if tok in self.server.tokens():
                self.who = "token:" + tok[:6]
                return "user"
            return None
        cert = self.connection.getpeercert()
        if cert:
            cn = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
            self.who = "cert:" + (cn[0] if cn else "?")
            return "user"
        return None

    # --- dispatch ---------------------------------------------------------

    def do_GET(self):
        self.handle_any()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def handle_any(self):
        self.who = "-"
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        self.q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        try:
            self.raw_body = self.read_body()
            if path in ("/version", "/healthz", "/readyz", "/livez"):
                if path == "/version":
                    return self.send_json(200, VERSION)
                return self.send_text(200, "ok")
            who = self.authenticate()
            if who is None:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            if path.startswith("/fake/"):
                if who != "admin":
                    raise ApiError(403, "Forbidden", "the fake's control needs the admin token")
                return self.control(path[6:])
            if path in ("/api", "/apis") or path.startswith("/openapi") or \
                    (self.command == "GET" and self.discovery_path(path)):
                return self.discovery(path)
            self.resource(path)
        except ApiError as e:
            self.send_json(e.code, status_obj(e.code, e.reason, e.message, e.details))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout):
            self.close_connection = True
        except Exception as e:  # a bug of ours: say so, as the real API would
            import traceback
            traceback.print_exc()
            self.send_json(500, status_obj(500, "InternalError", f"fakeapi: {e!r}"))

    def discovery_path(self, path):
        p = path.split("/")
        return (len(p) == 3 and p[1] == "api") or (len(p) == 4 and p[1] == "apis")

    def discovery(self, path):
        port = self.server.server_address[1]
        if path == "/api":
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": [{
                                            "clientCIDR": "0.0.0.0/0",
                                            "serverAddress": f"127.0.0.1:{port}"}]})
        if path == "/apis":
            groups = []
            for (g, v) in BY_GV:
                if g:
                    gv = {"groupVersion": f"{g}/{v}", "version": v}
                    groups.append({"name": g, "versions": [gv], "preferredVersion": gv})
            return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1",
                                        "groups": groups})
        if path == "/openapi/v2" and self.command == "GET":
            # an empty protobuf Document: kubectl then knows no schema and
            # validates nothing client side (the real one is protobuf too)
            self.send_response(200)
            self.send_header("Content-Type", "application/com.github.proto-openapi.spec.v2.v1.0"
                             "+protobuf")
            self.send_header("Content-Length", "0")
            return self.end_headers()
        p = path.split("/")
        if p[1] == "apis" and len(p) == 3 and p[2] in {g for g, _ in BY_GV}:
            gv = [{"groupVersion": f"{g}/{v}", "version": v} for g, v in BY_GV if g == p[2]]
            return self.send_json(200, {"kind": "APIGroup", "apiVersion": "v1", "name": p[2],
                                        "versions": gv, "preferredVersion": gv[0]})
        gv = ("", p[2]) if p[1] == "api" else (p[2], p[3]) if len(p) == 4 else None
        if gv in BY_GV:
            out = []
            for r in BY_GV[gv].values():
                out.append({"name": r.plural, "singularName": r.kind.lower(),
                            "namespaced": r.namespaced, "kind": r.kind, "verbs": r.verbs,
                            **({"shortNames": r.short} if r.short else {})})
                if r.status:
                    out.append({"name": r.plural + "/status", "singularName": "",
                                "namespaced": r.namespaced, "kind": r.kind,
                                "verbs": ["get", "patch", "update"]})
            return self.send_json(200, {"kind": "APIResourceList", "apiVersion": "v1",
                                        "groupVersion": "/".join(x for x in gv if x),
                                        "resources": out})
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def resource(self, path):
        p = path.strip("/").split("/")
        if p[0] == "api" and len(p) >= 3:
            gv, rest = ("", p[1]), p[2:]
        elif p[0] == "apis" and len(p) >= 4:
            gv, rest = (p[1], p[2]), p[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        known = BY_GV.get(gv)
        if known is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] in known:
            ns, rest = rest[1], rest[2:]
        res = known.get(rest[0])
        if res is None or len(rest) > 3 or (ns and not res.namespaced):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub and not (sub == "status" and res.status):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if res.namespaced and name and not ns:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        store, m = self.server.store, self.command
        watch = self.q.get("watch") in ("1", "true")
        verb = {"GET": "watch" if watch else ("get" if name else "list"), "POST": "create",
                "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(m, m)
        self.server.count(f"{verb} {res.plural}{'/' + sub if sub else ''}")
        if (m == "POST") == bool(name) and m != "GET" or (m == "DELETE" and not name):
            raise ApiError(405, "MethodNotAllowed", f"the server does not allow this method "
                           "on the requested resource")
        store.check_faults(res, name, m in ("POST", "PUT", "PATCH", "DELETE"))
        if m == "GET" and watch:
            return self.watch(res, ns, name)
        if m == "GET" and name:
            with store.lock:
                return self.send_json(200, copy.deepcopy(store._get(res, ns, name)))
        if m == "GET":
            lsel = parse_label_selector(self.q.get("labelSelector"))
            fsel = parse_field_selector(self.q.get("fieldSelector"))
            try:
                limit = max(0, int(self.q.get("limit") or 0))
            except ValueError:
                raise ApiError(400, "BadRequest", "limit: not a number")
            return self.send_json(200, store.list(res, ns, lsel, fsel, limit,
                                                  self.q.get("continue")))
        body = self.json_body()
        if m == "DELETE":
            pre = ((body or {}).get("preconditions") or {}).get("resourceVersion")
            old = store.delete(res, ns, name, pre)
            return self.send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                        "status": "Success", "details": {
                                            "name": name, "group": res.group,
                                            "kind": res.plural,
                                            "uid": old["metadata"]["uid"]}})
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        if m == "POST":
            self.check_kind(res, body)
            return self.send_json(201, store.create(res, ns, body))
        if m == "PUT":
            self.check_kind(res, body)
            if res.namespaced and (body.get("metadata") or {}).get("namespace", ns) != ns:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does "
                               "not match the namespace sent on the request")
            return self.send_json(200, store.update(res, ns, name, lambda cur: body, sub))
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an "
                           f"unknown format - accepted media types include: "
                           "application/merge-patch+json, application/strategic-merge-patch+json")
        strategic = ctype.startswith("application/strategic")
        return self.send_json(200, store.update(
            res, ns, name, lambda cur: merge_patch(cur, body, strategic), sub))

    def check_kind(self, res, body):
        if (body.get("apiVersion"), body.get("kind")) != (res.api_version, res.kind):
            raise ApiError(400, "BadRequest", f"the API version in the data "
                           f"({body.get('apiVersion')}) and kind ({body.get('kind')}) do not "
                           f"match {res.api_version} {res.kind}")

    # --- watch ------------------------------------------------------------

    def chunk(self, obj):
        data = json.dumps(obj).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def client_gone(self):
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
            if r and not self.connection.pending():
                self.connection.settimeout(0.05)
                try:
                    return self.connection.recv(1) == b""
                finally:
                    self.connection.settimeout(self.timeout)
        except (ssl.SSLWantReadError, socket.timeout):
            return False
        except (OSError, ValueError):
            return True
        return False

    def watch(self, res, ns, name):
        store = self.server.store
        lsel = parse_label_selector(self.q.get("labelSelector"))
        fsel = parse_field_selector(self.q.get("fieldSelector"))
        if name:
            fsel.append(lambda md: md.get("name") == name)
        try:
            deadline = time.monotonic() + float(self.q.get("timeoutSeconds") or 1800)
        except ValueError:
            raise ApiError(400, "BadRequest", "timeoutSeconds: not a number")
        bookmarks = self.q.get("allowWatchBookmarks") in ("1", "true")
        rv_param = self.q.get("resourceVersion") or "0"
        w = Watch()
        with store.lock:
            gone = store.faults["gone"]
            for key in (res.plural, "*"):
                if gone.get(key, 0) > 0:
                    gone[key] -= 1
                    raise ApiError(410, "Expired", "too old resource version: injected")
            initial = []
            if rv_param == "0":
                cursor = store.rv
                initial = [("ADDED", copy.deepcopy(o)) for k, o in sorted(
                    store.objs[res.plural].items()) if store.matches(o, ns, lsel, fsel)]
            else:
                try:
                    cursor = int(rv_param)
                except ValueError:
                    raise ApiError(400, "BadRequest", f"invalid resource version {rv_param!r}")
                if cursor < store.compacted:
                    raise ApiError(410, "Expired", f"too old resource version: {cursor} "
                                   f"({store.compacted + 1})")
            store.watches.add(w)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for etype, obj in initial:
                self.chunk({"type": etype, "object": obj})
            last_bm = time.monotonic()
            while True:
                with store.lock:
                    if store.rv == cursor and not (w.drop or w.error410):
                        wait = min(deadline - time.monotonic(), 0.5)
                        if bookmarks and store.bookmark_interval > 0:
                            wait = min(wait, last_bm + store.bookmark_interval - time.monotonic())
                        if wait > 0:
                            store.cond.wait(wait)
                    if cursor < store.compacted:  # the history overran this watch
                        w.error410 = True
                    out = [{"type": t, "object": copy.deepcopy(o)}
                           for erv, plural, t, o in store.events
                           if erv > cursor and plural == res.plural and
                           store.matches(o, ns, lsel, fsel)]
                    cursor, interval = store.rv, store.bookmark_interval
                if w.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                for ev in out:
                    self.chunk(ev)
                if w.error410:
                    self.chunk({"type": "ERROR", "object": status_obj(
                        410, "Expired", "too old resource version: injected")})
                    break
                if time.monotonic() >= deadline:
                    break
                if bookmarks and interval > 0 and time.monotonic() - last_bm >= interval:
                    self.chunk({"type": "BOOKMARK", "object": {
                        "kind": res.kind, "apiVersion": res.api_version,
                        "metadata": {"resourceVersion": str(cursor)}}})
                    last_bm = time.monotonic()
                if not out and self.client_gone():
                    self.close_connection = True
                    return
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        finally:
            with store.lock:
                store.watches.discard(w)

    # --- fault injection --------------------------------------------------

    def control(self, action):
        store, q = self.server.store, self.q
        count = int(q.get("count") or 1)
        with store.lock:
            if action == "drop-watches":
                for w in store.watches:
                    w.drop = True
            elif action == "error-410":
                for w in store.watches:
                    w.error410 = True
            elif action == "gone":
                key = q.get("resource") or "*"
                store.faults["gone"][key] = store.faults["gone"].get(key, 0) + count
            elif action == "conflict":
                store.faults["conflict"] += count
            elif action == "fail":
                store.faults["fail"] += count
                store.faults["fail_code"] = int(q.get("code") or 500)
            elif action == "bookmarks":
                store.bookmark_interval = float(q.get("interval") or 0)
            elif action in ("log", "counters", "reset", "compact"):
                pass
            else:
                raise ApiError(404, "NotFound", f"no fake action {action!r}")
            n = len(store.watches)
            store.cond.notify_all()
        if action == "compact":
            store.compact()
        if action == "log":
            return self.send_text(200, self.server.read_log())
        if action == "counters":
            return self.send_json(200, {**self.server.counters_copy(), "open_watches": n})
        if action == "reset":
            self.server.reset_log()
        self.send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                             "status": "Success", "message": f"{action} done",
                             "details": {"causes": [{"message": f"open_watches={n}"}]}})


VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-fake", "gitCommit": "0" * 40,
           "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
           "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64"}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, ctx, store, d, admin_token, verbose):
        self.ctx, self.store, self.dir = ctx, store, d
        self.admin_token, self.verbose = admin_token, verbose
        self.log_lock = threading.Lock()
        self.log_lines, self.counters = [], {}
        self.log_file = open(os.path.join(d, "requests.log"), "a", buffering=1)
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        # the TLS handshake in the connection's own thread, not in accept()
        request.settimeout(30)
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.log(f"{now_iso()} TLS handshake failed from {client_address[0]}: {e}")
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def tokens(self):
        try:
            with open(os.path.join(self.dir, "tokens")) as f:
                return {ln.strip() for ln in f if ln.strip()}
        except OSError:
            return set()

    def log(self, line):
        with self.log_lock:
            self.log_lines.append(line)
            if len(self.log_lines) > 100000:
                del self.log_lines[:50000]
            self.log_file.write(line + "\n")
        if self.verbose:
            print(line, file=sys.stderr, flush=True)

    def read_log(self):
        with self.log_lock:
            return "".join(ln + "\n" for ln in self.log_lines)

    def reset_log(self):
        with self.log_lock:
            self.log_lines.clear()
            self.counters.clear()

    def count(self, key):
        with self.log_lock:
            self.counters[key] = self.counters.get(key, 0) + 1

    def counters_copy(self):
        with self.log_lock:
            return dict(self.counters)


# --- set-up ------------------------------------------------------------------

OPENSSL_CNF = """[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = {sans}
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
"""


def make_certs(d, sans):
    def f(n):
        return os.path.join(d, n)

    def run(*args):
        subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    if all(os.path.exists(f(n)) for n in ("ca.crt", "server.crt", "server.key",
                                          "client.crt", "client.key")):
        return
    alt = ["IP:127.0.0.1", "DNS:localhost"]
    for s in sans:
        alt.append(s if ":" in s and s.split(":")[0] in ("IP", "DNS") else
                   ("IP:" + s if re.match(r"^[\d.]+$|:", s) else "DNS:" + s))
    with open(f("openssl.cnf"), "w") as cnf:
        cnf.write(OPENSSL_CNF.format(sans=",".join(alt)))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", f("ca.key"), "-out", f("ca.crt"), "-days", "3650",
        "-subj", "/CN=fake-kube-ca", "-config", f("openssl.cnf"), "-extensions", "ca")
    for who, subj in (("server", "/CN=fake-kube-apiserver"),
                      ("client", "/O=system:masters/CN=kshift-test")):
        run("req", "-new", *ec, "-keyout", f(who + ".key"), "-out", f(who + ".csr"),
            "-subj", subj, "-config", f("openssl.cnf"))
        run("x509", "-req", "-in", f(who + ".csr"), "-CA", f("ca.crt"), "-CAkey", f("ca.key"),
            "-set_serial", "0x" + secrets.token_hex(8), "-days", "3650", "-out", f(who + ".crt"),
            "-extfile", f("openssl.cnf"), "-extensions", who)
        os.unlink(f(who + ".csr"))


def write_atomic(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def kubeconfig(d, host, port, token):
    h = f"[{host}]" if ":" in host else host
    return f"""apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: https://{h}:{port}
    certificate-authority: {d}/ca.crt
users:
- name: fake-token
  user:
    token: {token}
- name: fake-certs
  user:
    client-certificate: {d}/client.crt
    client-key: {d}/client.key
- name: fake-tokenfile
  user:
    tokenFile: {d}/token
contexts:
- name: fake
  context:
    cluster: fake
    user: fake-token
    namespace: default
- name: fake-certs
  context:
    cluster: fake
    user: fake-certs
    namespace: default
- name: fake-tokenfile
  context:
    cluster: fake
    user: fake-tokenfile
    namespace: default
current-context: fake
"""


def load_data(store, path):
    with open(path) as f:
        text = f.read()
    try:
        docs = [json.loads(text)]
    except ValueError:
        import yaml
        docs = [x for x in yaml.safe_load_all(text) if x]
    objs = []
    for doc in docs:
        if isinstance(doc, list):
            objs += doc
        elif isinstance(doc, dict) and "items" in doc:
            objs += doc["items"]
        else:
            objs.append(doc)
    for obj in objs:
        res = BY_KIND.get((obj.get("apiVersion"), obj.get("kind")))
        if res is None:
            sys.exit(f"fakeapi: {path}: unknown apiVersion/kind "
                     f"{obj.get('apiVersion')}/{obj.get('kind')}")
        status = obj.get("status")
        store.create(res, (obj.get("metadata") or {}).get("namespace"), obj)
        if status is not None and res.status:
            md = obj["metadata"]
            store.update(res, md.get("namespace"), md["name"],
                         lambda cur: {**cur, "status": status}, "status")


def main():
    ap = argparse.ArgumentParser(description="a fake Kubernetes API server for tests")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", help="the first valid bearer token (default: random)")
    ap.add_argument("--admin-token", help="the control token (default: random)")
    ap.add_argument("--san", action="append", default=[], help="extra SAN, IP or DNS name")
    ap.add_argument("--data", help="objects to preload, JSON or YAML")
    ap.add_argument("--bookmark-interval", type=float, default=1.0)
    ap.add_argument("--history", type=int, default=1000)
    ap.add_argument("--verbose", action="store_true", help="log requests to stderr too")
    a = ap.parse_args()
    d = os.path.abspath(a.dir)
    os.makedirs(d, exist_ok=True)
    make_certs(d, a.san)
    tpath = os.path.join(d, "tokens")
    if a.token or not os.path.exists(tpath):
        write_atomic(tpath, (a.token or "user-" + secrets.token_hex(16)) + "\n")
    with open(tpath) as f:
        token = f.readline().strip()
    write_atomic(os.path.join(d, "token"), token + "\n")
    apath = os.path.join(d, "admin-token")
    if a.admin_token or not os.path.exists(apath):
        write_atomic(apath, (a.admin_token or "admin-" + secrets.token_hex(16)) + "\n")
    with open(apath) as f:
        admin = f.readline().strip()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, "server.crt"), os.path.join(d, "server.key"))
    ctx.load_verify_locations(os.path.join(d, "ca.crt"))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])

    store = Store(a.history)
    store.bookmark_interval = a.bookmark_interval
    if a.data:
        load_data(store, a.data)
    if ":" in a.host:
        Server.address_family = socket.AF_INET6
    srv = Server((a.host, a.port), ctx, store, d, admin, a.verbose)
    port = srv.server_address[1]
    write_atomic(os.path.join(d, "kubeconfig"), kubeconfig(d, a.host, port, token))
    write_atomic(os.path.join(d, "port"), f"{port}\n")
    print(f"fakeapi: listening on https://{a.host}:{port}, dir {d}", file=sys.stderr, flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
