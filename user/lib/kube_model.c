// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * A TrafficShift custom resource into struct ks_shift (see kube_model.h).
 *
 * The spec goes through ks_manifest_parse, as JSON (which is YAML), so a
 * custom resource is validated exactly as a local manifest is and refused
 * with the same messages. The Services and EndpointSlices it names are then
 * read the way kube-proxy reads them:
 *   - frontend addresses: the Service's spec.clusterIPs (or clusterIP),
 *     spec.externalIPs and status.loadBalancer.ingress[].ip, both families,
 *     after any given in the TrafficShift; "None" (headless) and "" skipped.
 *   - frontend ports: those of the TrafficShift, else the Service's TCP and
 *     UDP ports (SCTP is not served).
 *   - endpoints: for each frontend port, the backend Service's port with
 *     that number (else with the frontend Service port's name) names the
 *     EndpointSlice port that gives the endpoint port, slice by slice; so
 *     one endpoint may be listed once per frontend port, each time with its
 *     own port (struct ks_endpoint_spec.frontend_port).
 *   - conditions: ready, or serving and terminating (then KS_EP_TERMINATING);
 *     anything else is left out. Missing ready and serving count as true,
 *     a missing terminating as false.
 * Plain C over json-c objects, no I/O; the caller holds the store's lock.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "index.h"
#include "kube_model.h"

/* What one call works on. */
struct model {
	struct ks_kube_store *store;
	struct ks_shift *s;
	/* per frontend port: the name the frontend Service gives it, or NULL */
	const char **fe_names;
	bool family[KS_FAMILY_V6 + 1]; /* [KS_FAMILY_V4], [KS_FAMILY_V6]: a frontend
					* address has it */
	char *unresolved;
	size_t unresolved_len;
};

/* ---- json-c helpers: NULL or a default for what is absent or mistyped ---- */

static struct json_object *get(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

static const char *str_of(struct json_object *v)
{
	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static const char *get_str(struct json_object *o, const char *key)
{
	return str_of(get(o, key));
}

static size_t get_len(struct json_object *arr)
{
	return arr && json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
}

static struct json_object *get_idx(struct json_object *arr, size_t i)
{
	return json_object_array_get_idx(arr, i);
}

/* A port number 1..65535 under key, or 0. */
static uint16_t get_port(struct json_object *o, const char *key)
{
	struct json_object *v = get(o, key);
	int64_t n;

	if (!v || !json_object_is_type(v, json_type_int))
		return 0;
	n = json_object_get_int64(v);
	return n >= 1 && n <= 65535 ? n : 0;
}

/* A Service or EndpointSlice port's protocol: IPPROTO_TCP when absent (the
 * API's default), IPPROTO_UDP, or 0 for SCTP and anything else. */
static uint8_t get_proto(struct json_object *port)
{
	const char *p = get_str(port, "protocol");

	if (!p || !strcmp(p, "TCP"))
		return IPPROTO_TCP;
	return !strcmp(p, "UDP") ? IPPROTO_UDP : 0;
}

/* A port's name, "" when it has none (a Service with one port). */
static const char *get_name(struct json_object *port)
{
	const char *n = get_str(port, "name");

	return n ? n : "";
}

static bool get_bool(struct json_object *o, const char *key, bool dflt)
{
	struct json_object *v = get(o, key);

	return v && json_object_is_type(v, json_type_boolean) ? json_object_get_boolean(v) : dflt;
}

static const char *proto_name(uint8_t proto)
{
	return proto == IPPROTO_UDP ? "UDP" : "TCP";
}

/* The first reference that could not be resolved is the one reported. */
__attribute__((format(printf, 2, 3))) static void note(struct model *m, const char *fmt, ...)
{
	va_list ap;

	if (!m->unresolved || !m->unresolved_len || m->unresolved[0])
		return;
	va_start(ap, fmt);
	vsnprintf(m->unresolved, m->unresolved_len, fmt, ap);
	va_end(ap);
}

/* ---- the spec, through the manifest parser ---- */

/*
 * ts as the manifest parser reads it: metadata cut to name, namespace and
 * generation, status dropped; everything else as it is, so that what the
 * parser refuses in a local manifest it refuses here too.
 */
static int parse_spec(struct json_object *ts, struct ks_shift *out, char *err, size_t errlen)
{
	static const char *const keep[] = { "name", "namespace", "generation" };
	struct json_object *doc, *meta, *v;
	struct ks_shift *shifts = NULL;
	const char *text, *colon;
	size_t nr = 0, i;
	int ret;

	if (!ts || !json_object_is_type(ts, json_type_object)) {
		snprintf(err, errlen, "not a JSON object");
		return -EINVAL;
	}
	doc = json_object_new_object();
	if (!doc)
		goto nomem;
	json_object_object_foreach(ts, key, val) {
		if (!strcmp(key, "status"))
			continue; /* kshift's own output */
		if (!strcmp(key, "metadata") && json_object_is_type(val, json_type_object)) {
			meta = json_object_new_object();
			if (!meta || json_object_object_add(doc, key, meta)) {
				json_object_put(meta);
				goto nomem_doc;
			}
			for (i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
				if ((v = get(val, keep[i])) &&
				    json_object_object_add(meta, keep[i], json_object_get(v)))
					goto nomem_doc;
			continue;
		}
		if (json_object_object_add(doc, key, json_object_get(val)))
			goto nomem_doc;
	}
	text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN |
							   JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text)
		goto nomem_doc;
	ret = ks_manifest_parse(text, strlen(text), &shifts, &nr, err, errlen);
	json_object_put(doc);
	if (ret == -EINVAL && err && !strncmp(err, "line ", 5) && (colon = strstr(err, ": ")))
		/* one line of JSON: a line number would only mislead */
		memmove(err, colon + 2, strlen(colon + 2) + 1);
	if (ret)
		return ret;
	if (nr != 1) {
		ks_shifts_free(shifts, nr);
		snprintf(err, errlen, "not one TrafficShift");
		return -EINVAL;
	}
	*out = shifts[0];
	free(shifts); /* the array, not what it holds: *out has that now */
	return 0;

nomem_doc:
	json_object_put(doc);
nomem:
	snprintf(err, errlen, "out of memory");
	return -ENOMEM;
}

/* ---- the frontend Service ---- */

static int add_address(struct ks_shift *s, const char *str)
{
	struct ks_ip ip, *bigger;
	size_t i;

	if (!str || ks_ip_parse(str, &ip))
		return 0; /* "None", "", or what no kube-proxy would serve */
	for (i = 0; i < s->nr_addresses; i++)
		if (s->addresses[i].family == ip.family &&
		    !memcmp(&s->addresses[i].addr, &ip.addr, sizeof(ip.addr)))
			return 0;
	bigger = realloc(s->addresses, (s->nr_addresses + 1) * sizeof(*bigger));
	if (!bigger)
		return -ENOMEM;
	s->addresses = bigger;
	s->addresses[s->nr_addresses++] = ip;
	return 0;
}

/* The Service's addresses after the TrafficShift's own. */
static int service_addresses(struct ks_shift *s, struct json_object *svc)
{
	struct json_object *spec = get(svc, "spec"), *list, *ingress;
	size_t i;
	int ret = 0;

	list = get(spec, "clusterIPs");
	if (get_len(list)) {
		for (i = 0; !ret && i < get_len(list); i++)
			ret = add_address(s, str_of(get_idx(list, i)));
	} else {
		ret = add_address(s, get_str(spec, "clusterIP"));
	}
	list = get(spec, "externalIPs");
	for (i = 0; !ret && i < get_len(list); i++)
		ret = add_address(s, str_of(get_idx(list, i)));
	ingress = get(get(get(svc, "status"), "loadBalancer"), "ingress");
	for (i = 0; !ret && i < get_len(ingress); i++)
		ret = add_address(s, get_str(get_idx(ingress, i), "ip"));
	return ret;
}

/* The Service's TCP and UDP ports, for a TrafficShift that gives none. */
static int service_ports(struct ks_shift *s, struct json_object *svc)
{
	struct json_object *ports = get(get(svc, "spec"), "ports");
	struct ks_port p, *bigger;
	size_t i, j;

	for (i = 0; i < get_len(ports); i++) {
		p.port = get_port(get_idx(ports, i), "port");
		p.proto = get_proto(get_idx(ports, i));
		if (!p.port || !p.proto)
			continue;
		for (j = 0; j < s->nr_ports; j++)
			if (s->ports[j].port == p.port && s->ports[j].proto == p.proto)
				break;
		if (j < s->nr_ports)
			continue;
		bigger = realloc(s->ports, (s->nr_ports + 1) * sizeof(*bigger));
		if (!bigger)
			return -ENOMEM;
		s->ports = bigger;
		memset(&s->ports[s->nr_ports], 0, sizeof(*s->ports));
		s->ports[s->nr_ports].port = p.port;
		s->ports[s->nr_ports++].proto = p.proto;
	}
	return 0;
}

/* The entry of a Service's spec.ports with this number and protocol, else
 * (name not NULL or "") with this name and protocol, else NULL. */
static struct json_object *service_port(struct json_object *svc, const struct ks_port *p,
					const char *name)
{
	struct json_object *ports = get(get(svc, "spec"), "ports"), *e;
	size_t i;

	for (i = 0; i < get_len(ports); i++) {
		e = get_idx(ports, i);
		if (get_port(e, "port") == p->port && get_proto(e) == p->proto)
			return e;
	}
	for (i = 0; name && *name && i < get_len(ports); i++) {
		e = get_idx(ports, i);
		if (!strcmp(get_name(e), name) && get_proto(e) == p->proto)
			return e;
	}
	return NULL;
}

static int resolve_frontend(struct model *m)
{
	struct ks_shift *s = m->s;
	struct json_object *svc, *e;
	size_t i, had = s->nr_addresses;
	int ret;

	if (!*s->frontend_service)
		return 0;
	svc = ks_kube_store_get(m->store, KS_KUBE_SERVICE, s->namespace, s->frontend_service);
	if (!svc) {
		note(m, "spec.frontend.service: %s: not found in namespace %s", s->frontend_service,
		     s->namespace);
		return 0;
	}
	ret = service_addresses(s, svc);
	if (ret)
		return ret;
	if (s->nr_addresses == had)
		note(m, "spec.frontend.service: %s: has no cluster IP (headless or ExternalName?)",
		     s->frontend_service);
	if (!s->nr_ports) {
		ret = service_ports(s, svc);
		if (ret)
			return ret;
		if (!s->nr_ports)
			note(m, "spec.frontend.service: %s: has no TCP or UDP port",
			     s->frontend_service);
	}
	/* the names of the frontend ports, for backend Services that
	 * number their ports differently */
	m->fe_names = calloc(s->nr_ports + 1, sizeof(*m->fe_names));
	if (!m->fe_names)
		return -ENOMEM;
	for (i = 0; i < s->nr_ports; i++) {
		e = service_port(svc, &s->ports[i], NULL);
		m->fe_names[i] = e ? get_name(e) : NULL;
	}
	return 0;
}

/* ---- backend Services and their EndpointSlices ---- */

/* The endpoints being gathered for one backend. */
struct gather {
	struct ks_endpoint_spec *v;
	size_t n, cap;
	struct ks_index seen; /* endpoint without its state -> index + 1 in v */
};

/* Adds an endpoint once; seen in two slices (a pod moving between them), it
 * is ready if either says so. */
static int gather_add(struct gather *g, const struct ks_endpoint_spec *ep)
{
	struct ks_endpoint_spec key = *ep;
	uintptr_t at;

	key.state = 0;
	at = (uintptr_t)ks_index_get(&g->seen, &key, sizeof(key));
	if (at) {
		if (ep->state == KS_EP_READY)
			g->v[at - 1].state = KS_EP_READY;
		return 0;
	}
	if (g->n == g->cap) {
		size_t cap = g->cap ? 2 * g->cap : 16;
		struct ks_endpoint_spec *v = realloc(g->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		g->v = v;
		g->cap = cap;
	}
	g->v[g->n] = *ep;
	if (ks_index_put(&g->seen, &key, sizeof(key), (void *)(uintptr_t)(g->n + 1)))
		return -ENOMEM;
	g->n++;
	return 0;
}

/* The state of an EndpointSlice endpoint, or -1 when it takes no traffic,
 * read as kube-proxy reads it. */
static int endpoint_state(struct json_object *ep)
{
	struct json_object *c = get(ep, "conditions");

	if (get_bool(c, "ready", true))
		return KS_EP_READY;
	if (get_bool(c, "serving", true) && get_bool(c, "terminating", false))
		return KS_EP_TERMINATING;
	return -1;
}

/*
 * The port of slice's endpoints for frontend port p: the slice port named
 * name (with p's protocol) when the backend Service said which; without a
 * Service (want_name NULL), the one named after the frontend Service's port,
 * or else the only port of that protocol. 0 when there is none.
 */
static uint16_t slice_port(struct json_object *slice, const struct ks_port *p, const char *name,
			   const char *fe_name)
{
	struct json_object *ports = get(slice, "ports"), *e, *only = NULL;
	size_t i, nr_proto = 0;

	for (i = 0; i < get_len(ports); i++) {
		e = get_idx(ports, i);
		if (!get_port(e, "port") || get_proto(e) != p->proto)
			continue;
		if (name && !strcmp(get_name(e), name))
			return get_port(e, "port");
		if (!name && fe_name && *fe_name && !strcmp(get_name(e), fe_name))
			return get_port(e, "port");
		nr_proto++;
		only = e;
	}
	return !name && nr_proto == 1 ? get_port(only, "port") : 0;
}

/* The endpoints of one slice for frontend port p, on port port. */
static int slice_endpoints(struct model *m, struct gather *g, struct json_object *slice,
			   const struct ks_port *p, uint16_t port)
{
	const char *type = get_str(slice, "addressType");
	struct json_object *eps = get(slice, "endpoints"), *addrs;
	struct ks_endpoint_spec ep;
	uint8_t family;
	size_t i, j;
	int state, ret;

	if (type && !strcmp(type, "IPv4"))
		family = KS_FAMILY_V4;
	else if (type && !strcmp(type, "IPv6"))
		family = KS_FAMILY_V6;
	else
		return 0; /* FQDN: nothing kshift can rewrite to */
	if (!m->family[family])
		return 0; /* no frontend address of that family would use them */
	for (i = 0; i < get_len(eps); i++) {
		state = endpoint_state(get_idx(eps, i));
		if (state < 0)
			continue;
		addrs = get(get_idx(eps, i), "addresses");
		for (j = 0; j < get_len(addrs); j++) {
			struct json_object *a = get_idx(addrs, j);

			memset(&ep, 0, sizeof(ep));
			if (!json_object_is_type(a, json_type_string) ||
			    ks_ip_parse(json_object_get_string(a), &ep.ip) ||
			    ep.ip.family != family)
				continue;
			ep.port = port;
			ep.frontend_port = p->port;
			ep.frontend_proto = p->proto;
			ep.state = state;
			ret = gather_add(g, &ep);
			if (ret)
				return ret;
		}
	}
	return 0;
}

static int cmp_endpoint(const void *a, const void *b)
{
	const struct ks_endpoint_spec *x = a, *y = b;

	if (x->frontend_port != y->frontend_port)
		return x->frontend_port < y->frontend_port ? -1 : 1;
	if (x->frontend_proto != y->frontend_proto)
		return x->frontend_proto < y->frontend_proto ? -1 : 1;
	if (x->ip.family != y->ip.family)
		return x->ip.family < y->ip.family ? -1 : 1;
	if (memcmp(&x->ip.addr, &y->ip.addr, sizeof(x->ip.addr)))
		return memcmp(&x->ip.addr, &y->ip.addr, sizeof(x->ip.addr));
	return x->port < y->port ? -1 : x->port > y->port;
}

/* Endpoints of backend i from its Service's EndpointSlices, after any the
 * TrafficShift lists itself; in a stable order, whatever the order of the
 * slices, so that an unchanged backend compares equal and keeps its ring. */
static int resolve_backend(struct model *m, size_t i)
{
	struct ks_backend_spec *b = &m->s->backends[i];
	const struct ks_kube_set *slices;
	struct gather g = {};
	struct json_object *svc, *e;
	struct ks_endpoint_spec *all;
	const char *name;
	size_t p, k;
	uint16_t port;
	int ret = 0;

	svc = ks_kube_store_get(m->store, KS_KUBE_SERVICE, m->s->namespace, b->service);
	slices = ks_kube_store_slices(m->store, m->s->namespace, b->service);
	if (!svc)
		note(m, "spec.backends[%zu].service: %s: not found in namespace %s", i, b->service,
		     m->s->namespace);
	else if (!slices || !slices->n)
		note(m, "spec.backends[%zu].service: %s: has no EndpointSlices", i, b->service);
	for (p = 0; slices && p < m->s->nr_ports; p++) {
		const struct ks_port *fp = &m->s->ports[p];

		name = NULL;
		if (svc) {
			e = service_port(svc, fp, m->fe_names[p]);
			if (!e) {
				note(m, "spec.backends[%zu].service: %s: no port %u/%s%s%s", i,
				     b->service, fp->port, proto_name(fp->proto),
				     m->fe_names[p] && *m->fe_names[p] ? " or named " : "",
				     m->fe_names[p] ? m->fe_names[p] : "");
				continue;
			}
			name = get_name(e);
		}
		for (k = 0; !ret && k < slices->n; k++) {
			port = slice_port(slices->v[k], fp, name, m->fe_names[p]);
			if (port)
				ret = slice_endpoints(m, &g, slices->v[k], fp, port);
		}
	}
	if (!ret && g.n) {
		qsort(g.v, g.n, sizeof(*g.v), cmp_endpoint);
		all = realloc(b->endpoints, (b->nr_endpoints + g.n) * sizeof(*all));
		if (all) {
			memcpy(all + b->nr_endpoints, g.v, g.n * sizeof(*all));
			b->endpoints = all;
			b->nr_endpoints += g.n;
		} else {
			ret = -ENOMEM;
		}
	}
	free(g.v);
	ks_index_destroy(&g.seen);
	return ret;
}

int ks_kube_model_shift(struct json_object *ts, struct ks_kube_store *store, struct ks_shift *out,
			char *unresolved, size_t unresolved_len, char *err, size_t errlen)
{
	struct model m = {
		.store = store,
		.s = out,
		.unresolved = unresolved,
		.unresolved_len = unresolved_len,
	};
	size_t i;
	int ret;

	memset(out, 0, sizeof(*out));
	out->mirror_backend = -1;
	if (unresolved && unresolved_len)
		unresolved[0] = '\0';
	if (err && errlen)
		err[0] = '\0';
	ret = parse_spec(ts, out, err, errlen);
	if (ret)
		return ret;
	ret = resolve_frontend(&m);
	if (!ret && !m.fe_names && !(m.fe_names = calloc(out->nr_ports + 1, sizeof(char *))))
		ret = -ENOMEM;
	for (i = 0; i < out->nr_addresses; i++)
		m.family[out->addresses[i].family] = true;
	for (i = 0; !ret && i < out->nr_backends; i++)
		if (*out->backends[i].service)
			ret = resolve_backend(&m, i);
	free(m.fe_names);
	if (ret) {
		ks_shift_free(out);
		if (err && errlen)
			snprintf(err, errlen, "out of memory");
	}
	return ret;
}

size_t ks_kube_model_refs(struct json_object *ts, const char **names, size_t max)
{
	struct json_object *spec = get(ts, "spec"), *backends = get(spec, "backends");
	const char *name;
	size_t n = 0, i, j;

	for (i = 0; i <= get_len(backends); i++) {
		/* the frontend's first, then each backend's */
		name = i ? get_str(get_idx(backends, i - 1), "service")
			 : get_str(get(spec, "frontend"), "service");
		if (!name || !*name)
			continue;
		for (j = 0; j < n && strcmp(names[j], name); j++)
			;
		if (j == n && n < max)
			names[n++] = name;
	}
	return n;
}
