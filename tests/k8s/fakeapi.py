#!/usr/bin/python3
"""fakeapi.py: a fake Kubernetes API server for kshift's tests, speaking the
real protocol (HTTPS, HTTP/1.1 keep-alive, JSON, chunked watches) well enough
for kubectl 1.32, curl and kshiftd's libcurl client. tests/k8s/lib.sh runs it.

  fakeapi.py --dir DIR [--port 0] [--host 127.0.0.1] [--token T] [--san IP|DNS]...
             [--data FILE.json|.yaml] [--bookmark-interval S] [--history N] [--verbose]

DIR gets: ca, server and client certificates and keys (openssl; kept, the
server's remade when its SANs change: 127.0.0.1, localhost, --host, --san);
tokens (valid bearer tokens, one a line, re-read on every request: rewrite
it to rotate); token (the first, for a tokenFile); admin-token (never
rotated, the only one /fake/ takes); kubeconfig (contexts fake: token,
current; fake-certs: client certificate CN=kshift-test; fake-tokenfile);
port (last, once listening); requests.log ("TIME METHOD PATH?QUERY STATUS
WHO" a request).

Served: /version /healthz /readyz /livez without auth; plain discovery
documents /api /api/v1 /apis /apis/G /apis/G/V (asked for aggregated
discovery, client-go gets these and falls back); /openapi/v2 an empty
protobuf document and /openapi/v3 404, so kubectl validates nothing client
side and plain `kubectl apply -f` works. Resources: v1 namespaces, services;
discovery.k8s.io/v1 endpointslices; coordination.k8s.io/v1 leases;
kshift.dev/v1alpha1 trafficshifts (ts). Namespaces, services, trafficshifts
have a status subresource: PUT/PATCH .../NAME/status changes only .status,
the main resource ignores .status, create drops it.
  - get, list (namespaced and all namespaces), watch, create, update (PUT),
    patch, delete; labelSelector (= == != in notin k !k) and fieldSelector
    (metadata.name, metadata.namespace) on list and watch; limit/continue
    over a snapshot the first page takes, with remainingItemCount.
  - resourceVersion: one global counter; uid, creationTimestamp on create;
    generation 1, then +1 when anything but metadata and status changes. A
    write that changes nothing is a no-op (no new resourceVersion, no event).
  - 409 Conflict for a stale metadata.resourceVersion (PUT, PATCH, DELETE
    preconditions), 409 AlreadyExists, 422 for a PUT of a trafficshift
    without resourceVersion (custom resources never update unconditionally),
    404 for a missing namespace (default, kube-system, kube-public exist;
    deleting one deletes its objects at once).
  - PATCH: merge-patch+json (RFC 7386); strategic-merge-patch+json as a merge
    patch minus "$..." directives, lists named ports/conditions merged by
    port/type; others 415. Bodies are JSON, but for the protobuf Namespace
    `kubectl create namespace` sends.
  - Watch: chunked, a {"type","object"} line per event. No resourceVersion
    or "0": ADDED for each object first; else the events after it from the
    last --history (1000) events, and 410 Expired before them (an ERROR 410
    event when the history overruns an open watch). Objects entering or
    leaving a selector are ADDED or DELETED. allowWatchBookmarks: a BOOKMARK
    every --bookmark-interval (1 s). Ends after timeoutSeconds (1800).
    kubectl's as=Table Accept gets plain objects, which it prints.
Not implemented: RBAC, admission, schemas, generateName, server-side apply,
json-patch, deletecollection, finalizers, managedFields, HTTP/2.

Faults and inspection: /fake/ACTION with the admin token (lib.sh: fake_ctl);
POST unless said:
  drop-watches              close every open watch abruptly (no final chunk)
  gone?resource=R&count=N   the next N (1) watches of plural R (any) get 410
  error-410                 an ERROR 410 Expired event into every open watch,
                            then the end of those streams
  compact                   forget the history and list snapshots: older
                            resourceVersions and continue tokens get 410
  conflict?count=N          the next N writes answer 409 Conflict
  fail?count=N&code=C       the next N resource requests answer C (500)
  bookmarks?interval=S      the bookmark interval from now on (0: none)
  GET log                   the request log, as text
  GET counters              {"VERB PLURAL[/status]": n, ..., "open_watches": n}
  reset                     empty the log and the counters
"""
import argparse, base64, copy, datetime, json, os, re, secrets, select, socket, ssl
import subprocess, sys, threading, time, traceback, urllib.parse, uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Res:
    def __init__(self, group, version, plural, kind, namespaced, short=(), status=False,
                 unconditional=True):
        self.group, self.version, self.plural, self.kind = group, version, plural, kind
        self.namespaced, self.short, self.status = namespaced, list(short), status
        self.unconditional = unconditional  # PUT without resourceVersion allowed
        self.api_version = f"{group}/{version}" if group else version
        self.gr = f"{plural}.{group}" if group else plural


RESOURCES = [
    Res("", "v1", "namespaces", "Namespace", False, ["ns"], status=True),
    Res("", "v1", "services", "Service", True, ["svc"], status=True),
    Res("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    Res("coordination.k8s.io", "v1", "leases", "Lease", True),
    Res("kshift.dev", "v1alpha1", "trafficshifts", "TrafficShift", True, ["ts"], status=True,
        unconditional=False),
]
BY_GV = {}
for _r in RESOURCES:
    BY_GV.setdefault((_r.group, _r.version), {})[_r.plural] = _r
BY_KIND = {(r.api_version, r.kind): r for r in RESOURCES}
NAMESPACES = BY_GV[("", "v1")]["namespaces"]
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
SMP_MERGE_KEYS = {"ports": "port", "conditions": "type"}
VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-fake", "gitCommit": "0" * 40,
           "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
           "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64"}


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details


def status_obj(code, reason, message, details=None):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code,
            **({"details": details} if details else {})}


def details(res, name):
    return {"name": name, "group": res.group, "kind": res.plural}


def success(**kw):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", **kw}


def no_route():
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def bad(message):
    return ApiError(400, "BadRequest", message)


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- patches and selectors ------------------------------------------------------

def merge_patch(target, patch, strategic=False):
    """RFC 7386; strategic: drops $-directives and merges keyed lists."""
    if not isinstance(patch, dict) or (strategic and patch.get("$patch") == "replace"):
        return strip_directives(patch) if strategic else patch
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if strategic and k.startswith("$"):
            continue
        if v is None:
            result.pop(k, None)
        elif strategic and k in SMP_MERGE_KEYS and isinstance(v, list) and \
                isinstance(result.get(k), list):
            result[k] = merge_keyed_list(result[k], v, SMP_MERGE_KEYS[k])
        else:
            result[k] = merge_patch(result.get(k), v, strategic)
    return result


def strip_directives(v):
    if isinstance(v, dict):
        return {k: strip_directives(x) for k, x in v.items() if not k.startswith("$")}
    return [strip_directives(x) for x in v] if isinstance(v, list) else v


def merge_keyed_list(old, patch, key):
    if not all(isinstance(x, dict) and key in x for x in old + patch):
        return strip_directives(patch)
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
    """Predicates on a labels dict; ApiError 400 when malformed."""
    preds = []
    for t in re.split(r",(?![^(]*\))", s or ""):  # commas outside (a,b)
        if not t.strip():
            continue
        m = _SEL_SET.match(t)
        if m:
            k, vals, neg = m.group(1), {v.strip() for v in m.group(3).split(",")}, \
                m.group(2) == "notin"
            preds.append(lambda lb, k=k, vals=vals, neg=neg: (lb.get(k) in vals) != neg)
            continue
        m = _SEL_EQ.match(t)
        if not m or (m.group(1) and m.group(3)):
            raise bad(f"unable to parse requirement: {t!r}")
        neg, k, op, v = m.groups()
        if op:
            preds.append(lambda lb, k=k, v=v, eq=op != "!=": (lb.get(k) == v) == eq)
        else:
            preds.append(lambda lb, k=k, neg=bool(neg): (k in lb) != neg)
    return preds


def parse_field_selector(s):
    preds = []
    for t in (s or "").split(","):
        if not t.strip():
            continue
        m = re.match(r"^\s*metadata\.(name|namespace)\s*(==|=|!=)\s*(.*?)\s*$", t)
        if not m:
            raise bad(f'"{t}" is not a known field selector: only "metadata.name", '
                      '"metadata.namespace"')
        f, op, v = m.groups()
        preds.append(lambda md, f=f, v=v, eq=op != "!=": (md.get(f, "") == v) == eq)
    return preds


def pb_fields(b):
    """Protocol buffers wire format: [(field number, int or bytes)]."""
    def varint(i):
        v = shift = 0
        while b[i] & 0x80:
            v, shift, i = v | (b[i] & 0x7f) << shift, shift + 7, i + 1
        return v | b[i] << shift, i + 1
    out, i = [], 0
    while i < len(b):
        key, i = varint(i)
        if key & 7 == 0:
            v, i = varint(i)
        else:
            n, i = varint(i) if key & 7 == 2 else (8 if key & 7 == 1 else 4, i)
            v, i = b[i:i + n], i + n
        out.append((key >> 3, v))
    return out


def pb_namespace(raw):
    """What kubectl create namespace sends: k8s\\0, Unknown{TypeMeta, raw
    Namespace{ObjectMeta{1 name, 11 labels, 12 annotations}}}."""
    unknown = dict(pb_fields(raw[4:]))
    kind = dict(pb_fields(unknown.get(1, b""))).get(2, b"").decode()
    if kind != "Namespace":
        raise ApiError(415, "UnsupportedMediaType", f"fakeapi decodes no protobuf {kind}")
    md = {}
    for f, v in pb_fields(dict(pb_fields(unknown.get(2, b""))).get(1, b"")):
        if f == 1:
            md["name"] = v.decode()
        elif f in (11, 12):
            kv = dict(pb_fields(v))
            md.setdefault("labels" if f == 11 else "annotations", {})[kv[1].decode()] = \
                kv.get(2, b"").decode()
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": md}


# --- the store ------------------------------------------------------------------

class Store:
    """Every object, the event history, open watches and faults, under one
    lock; watchers wait on cond."""

    def __init__(self, history, bookmark_interval):
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.objs = {r.plural: {} for r in RESOURCES}  # plural -> {(ns, name): obj}
        self.events = deque(maxlen=history)  # (rv, plural, type, obj, previous obj)
        self.rv = self.compacted = 0  # compacted: the events up to it are forgotten
        self.snapshots, self.watches = {}, set()  # snapshots: id -> (rv, list items)
        self.faults = {"gone": {}, "conflict": 0, "fail": 0, "fail_code": 500}
        self.bookmark_interval = bookmark_interval
        for ns in ("default", "kube-system", "kube-public"):
            self.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                           "metadata": {"name": ns}})

    def _emit(self, res, etype, obj, prev=None):
        """With the lock held: a new resourceVersion on obj, and its event."""
        if len(self.events) == self.events.maxlen:
            self.compacted = self.events[0][0]
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.events.append((self.rv, res.plural, etype, copy.deepcopy(obj), prev))
        self.cond.notify_all()

    def _get(self, res, ns, name):
        obj = self.objs[res.plural].get((ns or "", name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{res.gr} "{name}" not found',
                           details(res, name))
        return obj

    def get(self, res, ns, name):
        with self.lock:
            return copy.deepcopy(self._get(res, ns, name))

    def _conflict(self, res, name):
        return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.gr} "{name}": '
                        "the object has been modified; please apply your changes to the "
                        "latest version and try again",
                        details(res, name))

    def check_faults(self, res, name, write):
        with self.lock:
            if write and self.faults["conflict"] > 0:
                self.faults["conflict"] -= 1
                raise self._conflict(res, name or "")
            if self.faults["fail"] > 0:
                self.faults["fail"] -= 1
                code = self.faults["fail_code"]
                raise ApiError(code, "InternalError" if code >= 500 else "BadRequest",
                               f"injected failure {code}")

    def create(self, res, ns, body):
        with self.lock:
            md = body.setdefault("metadata", {})
            name = md.get("name")
            if not name:
                raise ApiError(422, "Invalid", f"{res.kind} is invalid: metadata.name: "
                               "Required value: name or generateName is required",
                               {"kind": res.kind})
            if res.namespaced:
                if md.get("namespace", ns) != ns:
                    raise bad("the namespace of the provided object does not match the "
                              "namespace sent on the request")
                if ("", ns) not in self.objs["namespaces"]:
                    raise ApiError(404, "NotFound", f'namespaces "{ns}" not found',
                                   {"name": ns, "kind": "namespaces"})
                md["namespace"] = ns
            else:
                ns = ""
                md.pop("namespace", None)
            if (ns, name) in self.objs[res.plural]:
                raise ApiError(409, "AlreadyExists", f'{res.gr} "{name}" already exists',
                               details(res, name))
            body["apiVersion"], body["kind"] = res.api_version, res.kind
            for k in ("resourceVersion", "deletionTimestamp", "managedFields"):
                md.pop(k, None)
            md.update(uid=str(uuid.uuid4()), creationTimestamp=now_iso(), generation=1)
            if res.status:
                body.pop("status", None)
            if res is NAMESPACES:
                body["status"] = {"phase": "Active"}
                body.setdefault("spec", {"finalizers": ["kubernetes"]})
            self.objs[res.plural][(ns, name)] = body
            self._emit(res, "ADDED", body)
            return copy.deepcopy(body)

    def update(self, res, ns, name, fn, sub=None, put=False):
        """fn(a copy of the object) -> the new object; PUT and PATCH."""
        with self.lock:
            old = self._get(res, ns, name)
            new = fn(copy.deepcopy(old))
            if not isinstance(new, dict):
                raise bad("the body is not an object")
            md = new.get("metadata") or {}
            want_rv = md.get("resourceVersion")
            if put and not want_rv and not res.unconditional:
                raise ApiError(422, "Invalid", f'{res.kind}.{res.group} "{name}" is invalid: '
                               "metadata.resourceVersion: Invalid value: 0x0: must be "
                               "specified for an update", {"name": name, "kind": res.kind})
            if want_rv and want_rv != old["metadata"]["resourceVersion"]:
                raise self._conflict(res, name)
            if md.get("name", name) != name:
                raise bad(f"the name of the object ({md.get('name')}) does not match the name "
                          f"on the URL ({name})")
            if sub == "status":
                merged = {**copy.deepcopy(old), "status": new.get("status")}
                if merged["status"] is None:
                    del merged["status"]
            else:
                merged = new
                if res.status:
                    merged.pop("status", None)
                    if "status" in old:
                        merged["status"] = copy.deepcopy(old["status"])
                keep = {k: old["metadata"][k] for k in ("name", "namespace", "uid",
                        "creationTimestamp", "generation", "resourceVersion")
                        if k in old["metadata"]}
                merged["metadata"] = {**{k: v for k, v in md.items() if k != "managedFields"},
                                      **keep}
            merged["apiVersion"], merged["kind"] = res.api_version, res.kind
            if merged == old:
                return copy.deepcopy(old)
            if [(k, v) for k, v in merged.items() if k not in ("metadata", "status")] != \
                    [(k, v) for k, v in old.items() if k not in ("metadata", "status")]:
                merged["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
            self.objs[res.plural][(ns or "", name)] = merged
            self._emit(res, "MODIFIED", merged, old)
            return copy.deepcopy(merged)

    def delete(self, res, ns, name, precond_rv=None):
        with self.lock:
            old = self._get(res, ns, name)
            if precond_rv and precond_rv != old["metadata"]["resourceVersion"]:
                raise self._conflict(res, name)
            doomed = [(res, (ns or "", name))]
            if res is NAMESPACES:
                doomed += [(r, k) for r in RESOURCES if r.namespaced
                           for k in self.objs[r.plural] if k[0] == name]
            for r, key in doomed:
                self._emit(r, "DELETED", self.objs[r.plural].pop(key))
            return old

    @staticmethod
    def matches(obj, ns, lsel, fsel):
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
                    sid, start = tok["id"], int(tok["start"])
                    rv, items = self.snapshots[sid]
                except (KeyError, ValueError, TypeError):
                    raise ApiError(410, "Expired", "The provided continue parameter is too old "
                                   "to display a consistent list result. You can start a new "
                                   "list without the continue parameter.")
            else:
                sid, rv, start = None, self.rv, 0
                items = [copy.deepcopy(o) for k, o in sorted(self.objs[res.plural].items())
                         if self.matches(o, ns, lsel, fsel)]
            meta = {"resourceVersion": str(rv)}
            page = items[start:start + limit] if limit else items[start:]
            end = start + len(page)
            if end < len(items):
                if sid is None:
                    sid = secrets.token_hex(8)
                    self.snapshots[sid] = (rv, items)
                    while len(self.snapshots) > 200:
                        self.snapshots.pop(next(iter(self.snapshots)))
                meta["continue"] = base64.urlsafe_b64encode(
                    json.dumps({"id": sid, "start": end}).encode()).decode()
                if not lsel and not fsel:
                    meta["remainingItemCount"] = len(items) - end
            return {"kind": res.kind + "List", "apiVersion": res.api_version,
                    "metadata": meta, "items": page}

    def events_after(self, cursor, res, ns, lsel, fsel):
        """With the lock held: the watch events after cursor, as a watcher
        with these selectors sees them."""
        out, new = [], []
        for ev in reversed(self.events):  # only the new ones: many watchers wake
            if ev[0] <= cursor:
                break
            new.append(ev)
        for erv, plural, etype, obj, prev in reversed(new):
            if plural != res.plural:
                continue
            now_in = self.matches(obj, ns, lsel, fsel)
            was_in = prev is not None and self.matches(prev, ns, lsel, fsel)
            if etype == "MODIFIED" and now_in != was_in:
                etype = "ADDED" if now_in else "DELETED"
                if not now_in:  # leaving the selector: the old object, at this rv
                    obj = {**prev, "metadata": {**prev["metadata"],
                                                "resourceVersion": str(erv)}}
            elif not now_in:
                continue
            out.append({"type": etype, "object": copy.deepcopy(obj)})
        return out

    def compact(self):
        with self.lock:
            self.compacted = self.rv
            self.events.clear()
            self.snapshots.clear()


class Watch:
    """An open watch stream; /fake/ sets its flags."""
    drop = error410 = False


# --- HTTP -------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakeapi/1"
    timeout = 300  # an idle keep-alive connection

    def log_message(self, fmt, *args):
        pass

    def log_request(self, code="-", size="-"):
        self.server.log(f"{now_iso()} {self.command} {self.path} {code} {self.who}")

    def send_body(self, code, data, ctype="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_json(self, code, obj):
        self.send_body(code, json.dumps(obj).encode() + b"\n")

    def read_body(self):
        if "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = b""
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            data += self.rfile.read(size)
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
            pass
        return data

    def json_body(self):
        raw = self.raw_body
        if raw.startswith(b"k8s\0"):
            return pb_namespace(raw)
        try:
            return json.loads(raw) if raw.strip() else None
        except ValueError:
            raise bad("the body of the request was in an unknown format - accepted media "
                      "types include: application/json")

    def authenticate(self):
        """Sets self.who: "admin", "token:PREFIX", "cert:CN", or "-" (refused)."""
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Bearer "):
            tok = auth[7:].strip()
            if tok and tok == self.server.admin_token:
                self.who = "admin"
            elif tok in self.server.tokens():
                self.who = "token:" + tok[:6]
        elif self.connection.getpeercert():  # verified by the CA, or empty
            cn = [v for rdn in self.connection.getpeercert()["subject"] for k, v in rdn
                  if k == "commonName"]
            self.who = "cert:" + (cn[0] if cn else "?")
        if self.who == "-":
            raise ApiError(401, "Unauthorized", "Unauthorized")

    def do_GET(self):
        self.who, self.streaming = "-", False
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        self.q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        try:
            self.raw_body = self.read_body()
            if path == "/version":
                return self.send_json(200, VERSION)
            if path in ("/healthz", "/readyz", "/livez"):
                return self.send_body(200, b"ok", "text/plain; charset=utf-8")
            self.authenticate()
            if path.startswith("/fake/"):
                if self.who != "admin":
                    raise ApiError(403, "Forbidden", "/fake/ needs the admin token")
                return self.control(path[6:])
            p = path.split("/")
            if path in ("/api", "/apis") or p[1] == "openapi" or self.command == "GET" and (
                    (len(p) == 3 and p[1] == "api") or (len(p) in (3, 4) and p[1] == "apis")):
                return self.discovery(path, p)
            self.resource(p)
        except ApiError as e:
            self.send_json(e.code, status_obj(e.code, e.reason, e.message, e.details))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout):
            self.close_connection = True
        except Exception as e:  # a bug of ours: say so, as the real API would
            traceback.print_exc()
            if getattr(self, "streaming", False):  # a watch's 200 is already out
                self.close_connection = True
            else:
                self.send_json(500, status_obj(500, "InternalError", f"fakeapi: {e!r}"))

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def discovery(self, path, p):
        if path == "/api":
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": [{
                                            "clientCIDR": "0.0.0.0/0",
                                            "serverAddress": self.headers.get("Host", "")}]})
        if path == "/openapi/v2" and self.command == "GET":
            # an empty protobuf Document: kubectl then knows no schema and
            # validates nothing client side (the real one is protobuf too)
            return self.send_body(200, b"", "application/com.github.proto-openapi.spec.v2.v1.0"
                                  "+protobuf")
        groups = {}
        for (g, v) in BY_GV:
            if g:
                groups.setdefault(g, []).append({"groupVersion": f"{g}/{v}", "version": v})
        if path == "/apis":
            return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": vs, "preferredVersion": vs[0]}
                for g, vs in groups.items()]})
        if p[1] == "apis" and len(p) == 3 and p[2] in groups:
            vs = groups[p[2]]
            return self.send_json(200, {"kind": "APIGroup", "apiVersion": "v1", "name": p[2],
                                        "versions": vs, "preferredVersion": vs[0]})
        gv = ("", p[2]) if p[1] == "api" and len(p) == 3 else \
            (p[2], p[3]) if p[1] == "apis" and len(p) == 4 else None
        if gv not in BY_GV:
            raise no_route()
        out = []
        for r in BY_GV[gv].values():
            out.append({"name": r.plural, "singularName": r.kind.lower(),
                        "namespaced": r.namespaced, "kind": r.kind, "verbs": VERBS,
                        **({"shortNames": r.short} if r.short else {})})
            if r.status:
                out.append({"name": r.plural + "/status", "singularName": "",
                            "namespaced": r.namespaced, "kind": r.kind,
                            "verbs": ["get", "patch", "update"]})
        self.send_json(200, {"kind": "APIResourceList", "apiVersion": "v1",
                             "groupVersion": "/".join(x for x in gv if x), "resources": out})

    def resource(self, p):
        """/api/V/... or /apis/G/V/..., then [namespaces/NS/]R[/NAME[/status]]"""
        if p[1] == "api" and len(p) >= 4:
            gv, rest = ("", p[2]), p[3:]
        elif p[1] == "apis" and len(p) >= 5:
            gv, rest = (p[2], p[3]), p[4:]
        else:
            raise no_route()
        known, ns = BY_GV.get(gv) or {}, None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] in known:
            ns, rest = rest[1], rest[2:]
        res = known.get(rest[0])
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if res is None or len(rest) > 3 or (ns and not res.namespaced) or \
                (sub and not (sub == "status" and res.status)) or \
                (res.namespaced and name and not ns):
            raise no_route()
        m, store = self.command, self.server.store
        watch = self.q.get("watch") in ("1", "true")
        verb = {"GET": "watch" if watch else ("get" if name else "list"), "POST": "create",
                "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(m, m)
        self.server.count(f"{verb} {res.plural}{'/' + sub if sub else ''}")
        allowed = ("GET", "PUT", "PATCH", "DELETE") if name else ("GET", "POST")
        if m not in allowed or (sub and m == "DELETE") or \
                (m == "POST" and res.namespaced and not ns):
            raise ApiError(405, "MethodNotAllowed", f"the server does not allow this method "
                           "on the requested resource")
        store.check_faults(res, name, m != "GET")
        if m == "GET" and watch:
            return self.watch(res, ns, name)
        if m == "GET" and name:
            return self.send_json(200, store.get(res, ns, name))
        if m == "GET":
            lsel = parse_label_selector(self.q.get("labelSelector"))
            fsel = parse_field_selector(self.q.get("fieldSelector"))
            if not re.match(r"^\d*$", self.q.get("limit", "")):
                raise bad("limit: not a number")
            return self.send_json(200, store.list(res, ns, lsel, fsel,
                                                  int(self.q.get("limit") or 0),
                                                  self.q.get("continue")))
        body = self.json_body()
        if m == "DELETE":
            pre = ((body or {}).get("preconditions") or {}).get("resourceVersion")
            old = store.delete(res, ns, name, pre)
            return self.send_json(200, success(details={**details(res, name),
                                                        "uid": old["metadata"]["uid"]}))
        if not isinstance(body, dict):
            raise bad("the request body must be a JSON object")
        if m in ("POST", "PUT") and \
                (body.get("apiVersion"), body.get("kind")) != (res.api_version, res.kind):
            raise bad(f"the API version in the data ({body.get('apiVersion')}) and kind "
                      f"({body.get('kind')}) do not match {res.api_version} {res.kind}")
        if m == "POST":
            return self.send_json(201, store.create(res, ns, body))
        if m == "PUT":
            if res.namespaced and (body.get("metadata") or {}).get("namespace", ns) != ns:
                raise bad("the namespace of the provided object does not match the namespace "
                          "sent on the request")
            return self.send_json(200, store.update(res, ns, name, lambda cur: body, sub, True))
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            raise ApiError(415, "UnsupportedMediaType", f"fakeapi takes no {ctype} patch")
        strategic = ctype.startswith("application/strategic")
        self.send_json(200, store.update(res, ns, name,
                                         lambda cur: merge_patch(cur, body, strategic), sub))

    # --- watch ------------------------------------------------------------

    def chunk(self, obj):
        data = json.dumps(obj).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def client_gone(self):
        """The client closed its end (a watch client sends nothing)."""
        try:
            if select.select([self.connection], [], [], 0)[0] and not self.connection.pending():
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
        if not re.match(r"^\d*$", self.q.get("timeoutSeconds", "")):
            raise bad("timeoutSeconds: not a number")
        deadline = time.monotonic() + int(self.q.get("timeoutSeconds") or 1800)
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
            if not rv_param.isdigit():
                raise bad(f"invalid resource version {rv_param!r}")
            if rv_param == "0":
                cursor = store.rv
                initial = [copy.deepcopy(o) for k, o in sorted(store.objs[res.plural].items())
                           if store.matches(o, ns, lsel, fsel)]
            elif int(rv_param) < store.compacted:
                raise ApiError(410, "Expired", f"too old resource version: {rv_param} "
                               f"({store.compacted + 1})")
            else:
                cursor = int(rv_param)
            store.watches.add(w)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.streaming = True
            for obj in initial:
                self.chunk({"type": "ADDED", "object": obj})
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
                    out = store.events_after(cursor, res, ns, lsel, fsel)
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
        store, q, srv = self.server.store, self.q, self.server
        count = int(q.get("count") or 1)
        with store.lock:
            if action in ("drop-watches", "error-410"):
                for w in store.watches:
                    setattr(w, "drop" if action == "drop-watches" else "error410", True)
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
            elif action not in ("log", "counters", "reset", "compact"):
                raise ApiError(404, "NotFound", f"no fake action {action!r}")
            n = len(store.watches)
            store.cond.notify_all()
        if action == "compact":
            store.compact()
        with srv.log_lock:  # not held while sending: that logs
            text = "".join(ln + "\n" for ln in srv.log_lines) if action == "log" else ""
            counters = {**srv.counters, "open_watches": n}
            if action == "reset":
                srv.log_lines.clear()
                srv.counters.clear()
        if action == "log":
            return self.send_body(200, text.encode(), "text/plain; charset=utf-8")
        if action == "counters":
            return self.send_json(200, counters)
        self.send_json(200, success(message=f"{action} done; {n} open watches"))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, ctx, store, d, admin_token, verbose):
        self.ctx, self.store, self.dir = ctx, store, d
        self.admin_token, self.verbose = admin_token, verbose
        self.log_lock = threading.Lock()
        self.log_lines, self.counters = deque(maxlen=100000), {}
        self.log_file = open(os.path.join(d, "requests.log"), "a", buffering=1)
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        # the TLS handshake in the connection's own thread, not in accept();
        # no Nagle: headers and body go out as separate writes, and a client
        # that delays its ACK would otherwise wait 40 ms for the body
        request.settimeout(30)
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            return self.log(f"{now_iso()} TLS handshake failed from {client_address[0]}: {e}")
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
                return set(f.read().split())
        except OSError:
            return set()

    def log(self, line):
        with self.log_lock:
            self.log_lines.append(line)
            self.log_file.write(line + "\n")
        if self.verbose:
            print(line, file=sys.stderr, flush=True)

    def count(self, key):
        with self.log_lock:
            self.counters[key] = self.counters.get(key, 0) + 1


# --- set-up ------------------------------------------------------------------

_LEAF = "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment"
OPENSSL_CNF = ("[req]\ndistinguished_name = dn\n[dn]\n[ca]\nbasicConstraints = critical,CA:TRUE\n"
               "keyUsage = critical,keyCertSign,cRLSign,digitalSignature\n"
               f"[server]\n{_LEAF}\nextendedKeyUsage = serverAuth\nsubjectAltName = {{sans}}\n"
               f"[client]\n{_LEAF}\nextendedKeyUsage = clientAuth\n")


def make_certs(d, sans):
    """A CA, and server and client certificates it signs, with EC keys."""
    def f(n):
        return os.path.join(d, n)

    def run(*args):
        subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    alt = ["IP:127.0.0.1", "DNS:localhost"] + [
        s if s.startswith(("IP:", "DNS:")) else
        ("IP:" if re.match(r"^[\d.]+$|.*:", s) else "DNS:") + s for s in sans]
    alt = ",".join(dict.fromkeys(alt))
    with open(f("openssl.cnf"), "w") as cnf:
        cnf.write(OPENSSL_CNF.format(sans=alt))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    new_ca = not (os.path.exists(f("ca.crt")) and os.path.exists(f("ca.key")))
    if new_ca:
        run("req", "-x509", *ec, "-keyout", f("ca.key"), "-out", f("ca.crt"), "-days", "3650",
            "-subj", "/CN=fake-kube-ca", "-config", f("openssl.cnf"), "-extensions", "ca")
    for who, subj in (("server", "/CN=fake-kube-apiserver"),
                      ("client", "/O=system:masters/CN=kshift-test")):
        stamp = f(who + ".sans")
        have = all(os.path.exists(f(who + x)) for x in (".crt", ".key", ".sans"))
        if have and not new_ca and (who == "client" or open(stamp).read() == alt):
            continue
        run("req", "-new", *ec, "-keyout", f(who + ".key"), "-out", f(who + ".csr"),
            "-subj", subj, "-config", f("openssl.cnf"))
        run("x509", "-req", "-in", f(who + ".csr"), "-CA", f("ca.crt"), "-CAkey", f("ca.key"),
            "-set_serial", "0x" + secrets.token_hex(8), "-days", "3650", "-out", f(who + ".crt"),
            "-extfile", f("openssl.cnf"), "-extensions", who)
        os.unlink(f(who + ".csr"))
        write_atomic(stamp, alt)


def write_atomic(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def kubeconfig(d, server, token):
    """Block-style YAML, which any kubeconfig reader takes."""
    users = {"fake": f"token: {token}",
             "fake-certs": f"client-certificate: {d}/client.crt\n    client-key: {d}/client.key",
             "fake-tokenfile": f"tokenFile: {d}/token"}
    return (f"apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n"
            f"  cluster:\n    server: {server}\n    certificate-authority: {d}/ca.crt\n"
            "users:\n" + "".join(f"- name: {u}\n  user:\n    {v}\n" for u, v in users.items()) +
            "contexts:\n" + "".join(f"- name: {u}\n  context:\n    cluster: fake\n"
                                    f"    user: {u}\n    namespace: default\n" for u in users))


def load_data(store, path):
    """Objects from JSON (one, a list or a List) or YAML (documents)."""
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
        else:
            objs += doc.get("items") or [] if doc.get("kind", "").endswith("List") else [doc]
    for obj in sorted(objs, key=lambda o: o.get("kind") != "Namespace"):  # namespaces first
        res = BY_KIND.get((obj.get("apiVersion"), obj.get("kind")))
        if res is None:
            sys.exit(f"fakeapi: {path}: no resource {obj.get('apiVersion')} {obj.get('kind')}")
        status, md = obj.get("status"), obj.setdefault("metadata", {})
        ns = md.get("namespace", "default") if res.namespaced else None
        try:
            store.create(res, ns, obj)
            if status is not None and res.status:
                store.update(res, ns, md["name"], lambda cur: {**cur, "status": status}, "status")
        except ApiError as e:
            sys.exit(f"fakeapi: {path}: {obj.get('kind')} {md.get('name')}: {e.message}")


def main():
    ap = argparse.ArgumentParser(description="a fake Kubernetes API server for tests")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", help="the first valid bearer token (default: random)")
    ap.add_argument("--admin-token", help="the control token (default: random)")
    ap.add_argument("--san", action="append", default=[], help="one more SAN, IP or DNS name")
    ap.add_argument("--data", help="objects to preload, JSON or YAML")
    ap.add_argument("--bookmark-interval", type=float, default=1.0)
    ap.add_argument("--history", type=int, default=1000)
    ap.add_argument("--verbose", action="store_true", help="log requests to stderr too")
    a = ap.parse_args()
    d = os.path.abspath(a.dir)
    os.makedirs(d, exist_ok=True)
    make_certs(d, a.san + ([a.host] if a.host not in ("127.0.0.1", "0.0.0.0", "::") else []))
    for fname, given, prefix in (("tokens", a.token, "user-"),
                                 ("admin-token", a.admin_token, "admin-")):
        if given or not os.path.exists(os.path.join(d, fname)):
            write_atomic(os.path.join(d, fname), (given or prefix + secrets.token_hex(16)) + "\n")
    token, admin = (open(os.path.join(d, f)).readline().strip() for f in ("tokens", "admin-token"))
    write_atomic(os.path.join(d, "token"), token + "\n")

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, "server.crt"), os.path.join(d, "server.key"))
    ctx.load_verify_locations(os.path.join(d, "ca.crt"))
    ctx.verify_mode = ssl.CERT_OPTIONAL  # a client certificate, or a token
    ctx.set_alpn_protocols(["http/1.1"])

    store = Store(a.history, a.bookmark_interval)
    if a.data:
        load_data(store, a.data)
    if ":" in a.host:
        Server.address_family = socket.AF_INET6
    srv = Server((a.host, a.port), ctx, store, d, admin, a.verbose)
    port = srv.server_address[1]
    host = f"[{a.host}]" if ":" in a.host else a.host
    write_atomic(os.path.join(d, "kubeconfig"), kubeconfig(d, f"https://{host}:{port}", token))
    write_atomic(os.path.join(d, "port"), f"{port}\n")
    print(f"fakeapi: listening on https://{host}:{port}, dir {d}", file=sys.stderr, flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
