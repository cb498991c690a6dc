#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""Checks what a cluster operator applies (manifests/), printing TAP lines.

    check.py ROOT [PARSER]

ROOT is the repository; PARSER, when given, is tests/manifests/parse.c built
(it runs files through kshiftd's own manifest parser). Run by
tests/e2e/test_manifests.sh, which prints the plan.

The CRD's openAPIV3Schema is used as JSON Schema (draft 4, which OpenAPI v3
schemas are close to) with what the API server adds to it:
  - an object with properties takes no other field (the API server prunes
    unknown fields, and kubectl's strict field validation refuses them);
  - x-kubernetes-list-type set (unique items) and map (unique keys, a
    missing key taking its default), checked here by a keyword of our own.
CEL rules (x-kubernetes-validations) cannot run here: there is no API server
and no CEL interpreter. For the refusals that only CEL makes, the test checks
that the parser refuses them and that the CRD carries a rule at that place,
and says that the rule itself was not run.
"""
import copy
import glob
import json
import os
import subprocess
import sys
import tempfile

import jsonschema
import yaml

ROOT = sys.argv[1]
PARSER = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
MANIFESTS = os.path.join(ROOT, "manifests")


def ok(cond, msg, detail=None):
    if len(msg) > 160:  # a schema message can quote a whole pattern
        msg = msg[:157] + "..."
    print(("ok - " if cond else "not ok - ") + msg)
    if not cond and detail:
        for line in str(detail).splitlines():
            print("# " + line)
    return cond


def rel(path):
    return os.path.relpath(path, ROOT)


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# ---- (a) every YAML file parses ----------------------------------------

yaml_files = sorted(glob.glob(os.path.join(MANIFESTS, "**", "*.y*ml"), recursive=True))
docs = {}
for path in yaml_files:
    try:
        docs[path] = load_all(path)
        ok(True, f"{rel(path)} parses as YAML ({len(docs[path])} document{'s' if len(docs[path]) != 1 else ''})")
    except yaml.YAMLError as e:
        docs[path] = []
        ok(False, f"{rel(path)} parses as YAML", e)


def objects(kind):
    return [(p, d) for p, ds in docs.items() for d in ds if isinstance(d, dict) and d.get("kind") == kind]


# ---- the CRD ------------------------------------------------------------

crds = [d for p, d in objects("CustomResourceDefinition") if d["metadata"]["name"] == "trafficshifts.kshift.dev"]
if not ok(len(crds) == 1, "manifests/crd.yaml defines trafficshifts.kshift.dev once"):
    sys.exit(0)
crd = crds[0]
spec = crd["spec"]
ok(
    spec["group"] == "kshift.dev"
    and spec["scope"] == "Namespaced"
    and spec["names"]["kind"] == "TrafficShift"
    and spec["names"]["plural"] == "trafficshifts"
    and spec["names"]["singular"] == "trafficshift"
    and spec["names"].get("shortNames") == ["ts"],
    "CRD names: kshift.dev TrafficShift, trafficshifts, trafficshift, ts, namespaced",
)
versions = [v for v in spec["versions"] if v["name"] == "v1alpha1"]
ok(
    len(versions) == 1 and versions[0]["served"] and versions[0]["storage"] and "status" in versions[0].get("subresources", {}),
    "v1alpha1 is served, stored and has the status subresource",
)
version = versions[0]
schema = version["schema"]["openAPIV3Schema"]


def walk(node, path="", parents=()):
    """Yields (path, node, ancestors) for every schema node."""
    yield path, node, parents
    for k, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{k}", parents + (node,))
    if "items" in node:
        yield from walk(node["items"], f"{path}[]", parents + (node,))


untyped = [
    p
    for p, n, _ in walk(schema)
    if "type" not in n and not n.get("x-kubernetes-preserve-unknown-fields") and not n.get("x-kubernetes-int-or-string")
]
forbidden = [p for p, n, _ in walk(schema) for k in ("oneOf", "anyOf", "allOf", "not", "$ref", "additionalProperties") if k in n]
ok(not untyped and not forbidden, "the schema is structural: every node typed, no oneOf/anyOf/$ref", f"untyped: {untyped}\nforbidden: {forbidden}")

# The API server refuses a CRD whose CEL rules it cannot bound in cost:
# every list above a rule needs maxItems, every string it reads maxLength.
unbounded = []
for p, n, parents in walk(schema):
    if not n.get("x-kubernetes-validations"):
        continue
    for a in parents + (n,):
        if a.get("type") == "array" and "maxItems" not in a:
            unbounded.append(f"{p}: a list above it has no maxItems")
    for q, m, _ in walk(n, p):
        if m.get("type") == "string" and "maxLength" not in m and "enum" not in m:
            unbounded.append(f"{q}: no maxLength")
ok(not unbounded, "every CEL rule reads only bounded lists and strings", "\n".join(sorted(set(unbounded))))


def node_at(path):
    n = schema
    for part in path.split("."):
        if part.endswith("[]"):
            n = n["properties"][part[:-2]]["items"]
        else:
            n = n["properties"][part]
    return n


def cel_rules(path):
    return [v["rule"] for v in node_at(path).get("x-kubernetes-validations", [])]


# printer columns must point at fields the schema keeps (others are pruned)
cols = {c["name"]: c["jsonPath"] for c in version.get("additionalPrinterColumns", [])}
ok(
    cols.get("Backends") == ".status.weights"
    and node_at("status.weights")["type"] == "string"
    and cols.get("Programmed", "").startswith(".status.conditions[?(@.type==\"Programmed\")]")
    and node_at("status.nodes.summary")["type"] == "string"
    and cols.get("Nodes") == ".status.nodes.summary"
    and cols.get("Age") == ".metadata.creationTimestamp",
    "printer columns Backends, Programmed, Nodes, Age read fields the status schema has",
    json.dumps(cols),
)
cond = node_at("status.conditions")
ok(
    cond.get("x-kubernetes-list-type") == "map"
    and cond.get("x-kubernetes-list-map-keys") == ["type"]
    and set(cond["items"]["required"]) == {"type", "status", "lastTransitionTime", "reason", "message"},
    "status.conditions has metav1.Condition's shape, keyed by type",
)


def list_type(validator, value, instance, sch):
    """x-kubernetes-list-type: set and map, as the API server checks them."""
    if not validator.is_type(instance, "array"):
        return
    seen = set()
    if value == "set":
        for x in instance:
            k = json.dumps(x, sort_keys=True)
            if k in seen:
                yield jsonschema.ValidationError(f"duplicate entry {x!r}")
            seen.add(k)
    elif value == "map":
        keys = sch.get("x-kubernetes-list-map-keys", [])
        props = sch.get("items", {}).get("properties", {})
        for x in instance:
            if not isinstance(x, dict):
                continue
            k = tuple(json.dumps(x.get(key, props.get(key, {}).get("default"))) for key in keys)
            if k in seen:
                yield jsonschema.ValidationError(f"duplicate entry for key {keys}: {x!r}")
            seen.add(k)


def strict(node):
    """Unknown fields refused, as kubectl's strict field validation does."""
    node = copy.deepcopy(node)
    for _, n, _ in walk(node):
        if "properties" in n and not n.get("x-kubernetes-preserve-unknown-fields"):
            n["additionalProperties"] = False
    return node


Validator = jsonschema.validators.extend(jsonschema.Draft4Validator, {"x-kubernetes-list-type": list_type})
validator = Validator(strict(schema), format_checker=jsonschema.FormatChecker())


def schema_errors(doc):
    return ["/".join(map(str, e.absolute_path)) + ": " + e.message for e in validator.iter_errors(doc)]


def parse(text, as_json=False):
    """kshiftd's parser on text: (accepted, message), or with as_json
    (accepted, the shifts as kshiftctl get -o json prints them)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        r = subprocess.run([PARSER] + (["-j"] if as_json else []) + [f.name], capture_output=True, text=True, timeout=30)
        if as_json:
            return r.returncode == 0, [json.loads(ln) for ln in r.stdout.splitlines()] if r.returncode == 0 else r.stdout
        return r.returncode == 0, (r.stdout + r.stderr).strip().replace(f.name + ": ", "")
    finally:
        os.unlink(f.name)


# ---- (b) every example validates, (d) and kshiftd's parser takes it ------

examples = sorted(p for p in yaml_files if rel(p).startswith("manifests/examples/"))
ok(len(examples) >= 11, f"{len(examples)} example manifests (local and Kubernetes)")
for path in examples:
    for d in docs[path]:
        if d.get("kind") != "TrafficShift":
            continue
        errs = schema_errors(d)
        ok(not errs, f"{rel(path)}: {d['metadata']['name']} validates against the CRD schema", "\n".join(errs))
    if PARSER and all(d.get("kind") == "TrafficShift" for d in docs[path]):
        with open(path) as f:
            accepted, msg = parse(f.read())
        ok(accepted, f"{rel(path)}: kshiftd's parser accepts it", msg)
        # and its JSON form (kshiftctl get -o json) goes back through the CRD
        r = subprocess.run([PARSER, "-j", path], capture_output=True, text=True, timeout=30)
        for line in r.stdout.splitlines():
            back = json.loads(line)
            errs = schema_errors(back)
            ok(not errs, f"{rel(path)}: its JSON form (kshiftctl get -o json) validates against the CRD", "\n".join(errs) + "\n" + line)
if not PARSER:
    print("ok - kshiftd's parser on the examples # SKIP the parser runner did not build")

# the Kubernetes canary's Services are in web.yaml, as the docs say
app = docs.get(os.path.join(MANIFESTS, "examples", "kubernetes", "web.yaml"), [])
services = {d["metadata"]["name"] for d in app if d.get("kind") == "Service"}
canary = docs[os.path.join(MANIFESTS, "examples", "kubernetes", "canary.yaml")][0]["spec"]
named = {canary["frontend"]["service"]} | {b["service"] for b in canary["backends"]}
ok(named <= services, f"examples/kubernetes/web.yaml has the Services canary.yaml names ({', '.join(sorted(named))})",
   f"missing: {sorted(named - services)}")

wanted = {
    "canary": "canary.yaml",
    "blue/green": "blue-green.yaml",
    "A/B (rules)": "ab-test.yaml",
    "shadow (mirror)": "shadow.yaml",
    "dark launch": "dark-launch.yaml",
}
for what, name in wanted.items():
    for sub, frontend_key in (("", "addresses"), ("kubernetes/", "service")):
        p = os.path.join(MANIFESTS, "examples", sub + name)
        d = docs.get(p, [{}])[0]
        fe = d.get("spec", {}).get("frontend", {})
        ok(frontend_key in fe, f"an example of {what} in {'Kubernetes' if sub else 'local'} form: manifests/examples/{sub}{name}")

# ---- (c) bad TrafficShifts are refused, by the schema and by the parser -

BASE = docs[os.path.join(MANIFESTS, "examples", "canary.yaml")][0]


def mutate(fn):
    d = copy.deepcopy(BASE)
    fn(d)
    return d


def be(i):
    return lambda d: d["spec"]["backends"][i]


def setk(get, key, value):
    def f(d):
        get(d)[key] = value

    return f


def delk(get, key):
    def f(d):
        del get(d)[key]

    return f


spec_ = lambda d: d["spec"]  # noqa: E731
fe_ = lambda d: d["spec"]["frontend"]  # noqa: E731
port0 = lambda d: d["spec"]["frontend"]["ports"][0]  # noqa: E731


def add_rule(sources, backend="canary"):
    return setk(spec_, "rules", [{"sources": sources, "backend": backend}])


# refused by the schema itself
BAD = [
    ("weight 2000000", setk(be(1), "weight", 2000000)),
    ("weight -1", setk(be(1), "weight", -1)),
    ("weight as a string", setk(be(1), "weight", "10")),
    ("mirror percent 101", setk(spec_, "mirror", {"backend": "canary", "percent": 101})),
    ("mirror without backend", setk(spec_, "mirror", {"percent": 10})),
    ("no spec", lambda d: d.pop("spec")),
    ("no frontend", delk(spec_, "frontend")),
    ("frontend with no port", setk(fe_, "ports", [])),
    ("port 0", setk(port0, "port", 0)),
    ("port 65536", setk(port0, "port", 65536)),
    ("protocol SCTP", setk(port0, "protocol", "SCTP")),
    ("the same port twice (TCP by default)", setk(fe_, "ports", [{"port": 80}, {"port": 80, "protocol": "TCP"}])),
    ("the same address twice", setk(fe_, "addresses", ["198.18.100.1", "198.18.100.1"])),
    ("no backends", setk(spec_, "backends", [])),
    ("9 backends", setk(spec_, "backends", [{"name": f"b{i}", "endpoints": [], "weight": 1} for i in range(9)])),
    ("backend without name", delk(be(0), "name")),
    ("backend name with capitals", setk(be(0), "name", "Stable")),
    ("backend name over 63 characters", setk(be(0), "name", "a" * 64)),
    ("two backends named stable", setk(be(1), "name", "stable")),
    ("backend service not a DNS label", setk(be(0), "service", "web_v1")),
    ("frontend service not a DNS label", setk(fe_, "service", "Web")),
    ("unknown spec field", setk(spec_, "weights", {"stable": 1})),
    ("misspelt backend field", setk(be(0), "weigth", 5)),
    ("affinity sticky", setk(spec_, "affinity", "sticky")),
    ("endpoint port 0", setk(be(0), "endpoints", ["198.18.2.2:0"])),
    ("endpoint port 65536", setk(be(0), "endpoints", ["198.18.2.2:65536"])),
    ("endpoint port with a leading zero", setk(be(0), "endpoints", ["198.18.2.2:080"])),
    ("endpoint [IPv6] without a port", setk(be(0), "endpoints", ["[2001:2:0:2::2]"])),
    ("endpoint host name", setk(be(0), "endpoints", ["stable-0:8080"])),
    ("endpoint listed twice", setk(be(0), "endpoints", ["198.18.2.2:8080", "198.18.2.2:8080"])),
    ("rule without sources", setk(spec_, "rules", [{"backend": "canary"}])),
    ("rule with no source", add_rule([])),
    ("rule without backend", setk(spec_, "rules", [{"sources": ["198.18.1.0/24"]}])),
]
# refused by a CEL rule (not run here) and by the parser; the CRD path that
# carries the rule, and a word the rule must contain
BAD_CEL = [
    ("frontend with neither service nor addresses", delk(fe_, "addresses"), "spec.frontend", "has(self.service)"),
    ("frontend with addresses and no ports", delk(fe_, "ports"), "spec.frontend", "has(self.ports)"),
    ("backend with neither service nor endpoints", delk(be(1), "endpoints"), "spec.backends[]", "has(self.endpoints)"),
    ("rule naming no backend", add_rule(["198.18.1.0/24"], "ghost"), "spec", "r.backend"),
    ("mirror naming no backend", setk(spec_, "mirror", {"backend": "ghost"}), "spec", "self.mirror.backend"),
    ("address 198.18.100.256", setk(fe_, "addresses", ["198.18.100.256"]), "spec.frontend.addresses[]", "isIP"),
    ("endpoint 198.18.2.256:8080", setk(be(0), "endpoints", ["198.18.2.256:8080"]), "spec.backends[].endpoints[]", "isIP"),
    ("endpoint [IPv4]:PORT", setk(be(0), "endpoints", ["[198.18.2.2]:8080"]), "spec.backends[].endpoints[]", "family() == 6"),
    ("source prefix with host bits", add_rule(["198.18.1.17/28"]), "spec.rules[].sources[]", "masked()"),
    ("source prefix /33", add_rule(["198.18.1.0/33"]), "spec.rules[].sources[]", "isCIDR"),
]

for what, fn in BAD:
    d = mutate(fn)
    errs = schema_errors(d)
    ok(bool(errs), f"schema refuses: {what}" + (f" ({errs[0]})" if errs else ""))
    if PARSER:
        accepted, msg = parse(yaml.safe_dump(d, sort_keys=False))
        ok(not accepted, f"parser refuses: {what}" + (f" ({msg})" if not accepted else ""), msg)

for what, fn, path, word in BAD_CEL:
    d = mutate(fn)
    ok(any(word in r for r in cel_rules(path)), f"CRD has a CEL rule at {path} for: {what}", cel_rules(path))
    if PARSER:
        accepted, msg = parse(yaml.safe_dump(d, sort_keys=False))
        ok(not accepted, f"parser refuses: {what}" + (f" ({msg})" if not accepted else ""), msg)
print(f"ok - {len(BAD_CEL)} CEL rules evaluated by the API server # SKIP no API server or CEL interpreter here")

# The other way round: the schema must take what the parser takes.
GOOD = [
    ("IPv6 frontend and endpoints", lambda d: (setk(fe_, "addresses", ["2001:2:0:100::1"])(d), setk(be(0), "endpoints", ["[2001:2:0:2::2]:8080", "2001:2:0:2::3"])(d))),
    ("bare endpoint address", setk(be(1), "endpoints", ["198.18.3.2"])),
    ("weight 0 and 1000000", lambda d: (setk(be(0), "weight", 0)(d), setk(be(1), "weight", 1000000)(d))),
    ("every weight 0 (recreate)", lambda d: (setk(be(0), "weight", 0)(d), setk(be(1), "weight", 0)(d))),
    ("no weight (default 1)", delk(be(1), "weight")),
    ("UDP and TCP on one port", setk(fe_, "ports", [{"port": 53, "protocol": "UDP"}, {"port": 53}])),
    ("service frontend and backends", lambda d: (delk(fe_, "addresses")(d), setk(fe_, "service", "web")(d), delk(be(0), "endpoints")(d), setk(be(0), "service", "web-v1")(d))),
    ("empty endpoint list", setk(be(1), "endpoints", [])),
    ("service frontend without ports (the Service's)", lambda d: (setk(fe_, "service", "web")(d), delk(fe_, "ports")(d))),
    ("8 backends", setk(spec_, "backends", [{"name": f"b{i}", "endpoints": [], "weight": 1} for i in range(8)])),
    ("rule with a host and a prefix", add_rule(["198.18.1.5", "2001:2:0:1::/64"])),
    ("mirror 0 percent", setk(spec_, "mirror", {"backend": "canary", "percent": 0})),
]
for what, fn in GOOD:
    d = mutate(fn)
    errs = schema_errors(d)
    ok(not errs, f"schema accepts: {what}", "\n".join(errs))
    if PARSER:
        accepted, msg = parse(yaml.safe_dump(d, sort_keys=False))
        ok(accepted, f"parser accepts: {what}", msg)
        accepted, back = parse(yaml.safe_dump(d, sort_keys=False), as_json=True)
        errs = [e for b in back for e in schema_errors(b)] if accepted else ["refused"]
        ok(not errs, f"its JSON form validates against the CRD: {what}", "\n".join(errs))

# A known difference, documented in crd.yaml and docs/kubernetes.md: the
# object form of an endpoint is for local manifests only.
d = mutate(setk(be(0), "endpoints", [{"address": "198.18.2.2:8080", "draining": True}]))
ok(bool(schema_errors(d)), "schema refuses the object form of an endpoint (local manifests only)")
if PARSER:
    accepted, msg = parse(yaml.safe_dump(d, sort_keys=False))
    ok(accepted, "parser accepts the object form of an endpoint {address, draining}", msg)

# ---- (e) the DaemonSet and RBAC -----------------------------------------

ds = [d for _, d in objects("DaemonSet") if d["metadata"]["name"] == "kshift"]
if ok(len(ds) == 1, "manifests/daemonset.yaml has the DaemonSet kshift"):
    ds = ds[0]
    pod = ds["spec"]["template"]["spec"]
    containers = pod.get("containers", []) + pod.get("initContainers", [])
    kshiftd = [c for c in pod["containers"] if c["name"] == "kshiftd"]
    ok(ds["metadata"].get("namespace") == "kshift-system", "the DaemonSet runs in kshift-system")
    ok(pod.get("hostNetwork") is True and pod.get("dnsPolicy") == "ClusterFirstWithHostNet", "host network, ClusterFirstWithHostNet")
    ok(any(t.get("operator") == "Exists" and "key" not in t for t in pod.get("tolerations", [])), "tolerates every taint")
    ok(pod.get("priorityClassName") == "system-node-critical", "priority system-node-critical")
    ok(bool(kshiftd), "a container named kshiftd")
    for c in kshiftd:
        ok("livenessProbe" in c and c["livenessProbe"].get("httpGet", {}).get("path") == "/healthz", "kshiftd has a liveness probe on /healthz")
        ok("readinessProbe" in c and c["readinessProbe"].get("httpGet", {}).get("path") == "/readyz", "kshiftd has a readiness probe on /readyz")
        res = c.get("resources", {})
        ok("requests" in res and "memory" in res.get("limits", {}), "kshiftd has resource requests and a memory limit")
    sa = pod.get("serviceAccountName")
    ok(sa == "kshift", "the pods run as ServiceAccount kshift")
    upd = ds["spec"].get("updateStrategy", {})
    ok(upd.get("type") == "RollingUpdate" and upd.get("rollingUpdate", {}).get("maxUnavailable") == 1, "rolling update, one node at a time")

# every DaemonSet (kshift, kshift-uninstall): not privileged, least capabilities
with open(os.path.join(ROOT, "user", "kshiftd.c")) as f:
    kshiftd_src = f.read()
for _, d in objects("DaemonSet"):
    pod = d["spec"]["template"]["spec"]
    containers = pod.get("containers", []) + pod.get("initContainers", [])
    ds_name = d["metadata"]["name"]
    privileged = [c["name"] for c in containers if c.get("securityContext", {}).get("privileged")]
    ok(not privileged, f"DaemonSet {ds_name}: no container is privileged", privileged)
    for c in containers:
        args = c.get("command", []) + c.get("args", [])
        if args[:1] == ["kshiftd"]:
            # every flag passed must be one kshiftd knows
            flags = sorted({a.split("=")[0][2:] for a in args if a.startswith("--")})
            unknown = [fl for fl in flags if f'{{ "{fl}",' not in kshiftd_src]
            ok(not unknown, f"{ds_name}/{c['name']}: kshiftd's option table has every flag passed ({', '.join(flags)})",
               f"missing in user/kshiftd.c: {unknown}")
        sc = c.get("securityContext", {})
        caps = sc.get("capabilities", {})
        ok(caps.get("drop") == ["ALL"], f"{ds_name}/{c['name']}: capabilities drop ALL")
        ok(set(caps.get("add", [])) <= {"BPF", "NET_ADMIN", "PERFMON", "SYS_RESOURCE"} and "SYS_ADMIN" not in caps.get("add", []),
           f"{ds_name}/{c['name']}: adds only BPF-related capabilities ({', '.join(caps.get('add', []))})")
        ok(sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False,
           f"{ds_name}/{c['name']}: read-only root, no privilege escalation")
        bidir = [m["name"] for m in c.get("volumeMounts", []) if m.get("mountPropagation") == "Bidirectional"]
        # the API server refuses Bidirectional outside privileged containers
        ok(not bidir, f"{ds_name}/{c['name']}: no Bidirectional mount propagation (needs privileged)", bidir)

roles = {(d["kind"], d["metadata"]["name"]): d for _, ds_ in docs.items() for d in ds_ if isinstance(d, dict) and d.get("kind") in ("ClusterRole", "Role")}
for key in (("ClusterRole", "kshift"), ("ClusterRole", "kshift-operator"), ("Role", "kshift")):
    ok(key in roles, f"RBAC has the {key[0]} {key[1]}")
for (kind, name), r in sorted(roles.items()):
    rules = r.get("rules", [])
    wild = [x for x in rules if "*" in x.get("verbs", []) or "*" in x.get("resources", []) or "*" in x.get("apiGroups", [])]
    ok(not wild, f"{kind} {name}: no wildcard", wild)
    secrets = [x for x in rules if "secrets" in x.get("resources", [])]
    ok(not secrets, f"{kind} {name}: no verb on secrets", secrets)
    writes = [x for x in rules if any(res.split("/")[0] == "trafficshifts" and "/" not in res for res in x.get("resources", []))
              and set(x.get("verbs", [])) & {"create", "delete", "deletecollection"}]
    ok(not writes, f"{kind} {name}: no create or delete on trafficshifts", writes)
    if kind == "ClusterRole":
        leases = [x for x in rules if "leases" in x.get("resources", [])]
        ok(not leases, f"ClusterRole {name}: no leases (those are in kshift-system only)", leases)
if ("Role", "kshift") in roles:
    r = roles[("Role", "kshift")]
    ok(r["metadata"].get("namespace") == "kshift-system"
       and all(x.get("resources") == ["leases"] and x.get("apiGroups") == ["coordination.k8s.io"] for x in r["rules"]),
       "Role kshift: leases in kshift-system, nothing else")
bindings = [d for _, ds_ in docs.items() for d in ds_ if isinstance(d, dict) and d.get("kind") in ("ClusterRoleBinding", "RoleBinding")]
bound = {(b["roleRef"]["kind"], b["roleRef"]["name"]) for b in bindings
         if any(s.get("kind") == "ServiceAccount" and s.get("name") == "kshift" and s.get("namespace") == "kshift-system" for s in b.get("subjects", []))}
ok({("ClusterRole", "kshift"), ("Role", "kshift")} <= bound, "ServiceAccount kshift-system/kshift is bound to ClusterRole kshift and Role kshift", bound)

# ---- the Containerfile ---------------------------------------------------
# No container engine here: what can be checked without one.

with open(os.path.join(MANIFESTS, "Containerfile")) as f:
    text = f.read().replace("\\\n", " ")
stages = [s for s in text.split("\nFROM ")[1:]]
ok(len(stages) == 2 and stages[0].startswith("debian:12 AS build") and stages[1].startswith("debian:12"),
   "Containerfile: a debian:12 build stage and a debian:12 runtime stage")


def apt_packages(stage):
    pkgs = []
    for line in stage.splitlines():
        if "apt-get install" in line:
            words = line.split("apt-get install", 1)[1].split("&&")[0].split()
            pkgs += [w for w in words if not w.startswith("-")]
    return pkgs


build_pkgs, run_pkgs = apt_packages(stages[0]), apt_packages(stages[1])
with open(os.path.join(ROOT, "scripts", "deps.sh")) as f:
    deps_text = f.read()
deps = deps_text.split("packages=(", 1)[1].split(")", 1)[0].split()
# -dev packages only the tests need: cmocka, and clang's sanitizer and
# fuzzer runtimes (make fuzz, make test SANITIZE=1)
TEST_ONLY = {"libcmocka-dev", "libclang-rt-14-dev"}
needed = {p for p in deps if p.endswith("-dev") and p not in TEST_ONLY} | {"make", "gcc", "clang", "llvm", "bpftool", "pkg-config"}
ok(needed <= set(build_pkgs), "Containerfile: the build stage installs scripts/deps.sh's build packages",
   f"missing: {sorted(needed - set(build_pkgs))}")
ok(set(build_pkgs) - {"libc6-dev"} <= set(deps), "Containerfile: the build stage installs nothing scripts/deps.sh does not list",
   f"extra: {sorted(set(build_pkgs) - set(deps) - {'libc6-dev'})}")
copies = [line.split()[1:-1] for line in text.splitlines() if line.strip().startswith("COPY ") and "--from" not in line]
missing = [src for srcs in copies for src in srcs if not src.endswith("*") and not os.path.exists(os.path.join(ROOT, src))]
ok(copies and not missing, "Containerfile: every COPY source exists in the repository", missing)
with open(os.path.join(MANIFESTS, "Containerfile.dockerignore")) as f:
    allowed = {line[1:].strip() for line in f if line.startswith("!")}
ignored = [src.rstrip("*") for srcs in copies for src in srcs if src.rstrip("*") not in allowed]
ok(not ignored, "Containerfile.dockerignore lets every COPY source into the build context", ignored)

# the runtime stage must carry every library the binaries link (only when
# they are built here: the package owning each resolved NEEDED library)
bins = [os.path.join(ROOT, "build", b) for b in ("kshiftd", "kshiftctl")]
if all(os.path.exists(b) for b in bins):
    owners, unknown = set(), []
    for b in bins:
        # direct dependencies only (NEEDED): apt brings in theirs
        dyn = subprocess.run(["readelf", "-d", b], capture_output=True, text=True).stdout
        needed_libs = {ln.split("[")[1].split("]")[0] for ln in dyn.splitlines() if "(NEEDED)" in ln}
        needed_libs -= {n for n in needed_libs if n.startswith(("libc.so", "ld-linux", "libm.so", "libpthread"))}
        out = subprocess.run(["ldd", b], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if "=>" not in line or "not found" in line:
                continue
            path = os.path.realpath(line.split("=>")[1].split()[0])
            lib = line.split("=>")[0].strip()
            if lib not in needed_libs:
                continue
            for cand in (path, "/usr" + path if not path.startswith("/usr") else path[4:]):
                r = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
                if r.returncode == 0:
                    owners.add(r.stdout.split(":")[0])
                    break
            else:
                unknown.append(lib)
    ok(not unknown and owners <= set(run_pkgs), f"Containerfile: the runtime stage installs every library kshiftd and kshiftctl link ({', '.join(sorted(owners))})",
       f"not installed: {sorted(owners - set(run_pkgs))}; owner unknown: {unknown}")
else:
    print("ok - Containerfile: the runtime stage's libraries against the binaries # SKIP build/kshiftd not built")

# ---- docs/kubernetes.md ------------------------------------------------------
# The page stands on the repository alone: its links lead to files here (or
# to its own sections), and every manifest it tells people to apply exists.
import re  # noqa: E402

with open(os.path.join(ROOT, "docs", "kubernetes.md")) as f:
    page = f.read()
links = re.findall(r"\]\(([^)#][^)]*)\)", page)
broken = [lk for lk in links if not lk.startswith("http") and not os.path.exists(os.path.join(ROOT, "docs", lk.split("#")[0]))]
ok(not broken, "docs/kubernetes.md: every link leads to a file in the repository", broken)
anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.*)$", page, re.M)}
bad_anchors = [a for a in re.findall(r"\]\(#([^)]*)\)", page) if a not in anchors]
ok(not bad_anchors, "docs/kubernetes.md: every section link has its section", bad_anchors)
named = sorted(set(re.findall(r"manifests/[\w./-]+\.yaml", page)))
ok(named and all(os.path.exists(os.path.join(ROOT, p)) for p in named),
   f"docs/kubernetes.md: the manifests it names exist ({len(named)})", [p for p in named if not os.path.exists(os.path.join(ROOT, p))])
outside = []
for p_ in [os.path.join(ROOT, "docs", "kubernetes.md")] + glob.glob(os.path.join(MANIFESTS, "**", "*"), recursive=True):
    if os.path.isfile(p_):
        with open(p_, errors="replace") as f:
            t = f.read()
        outside += [f"{rel(p_)}: {w}" for w in ("SPEC.md", "/work/") if w in t]
ok(not outside, "manifests/ and docs/kubernetes.md refer to nothing outside the repository", outside)
