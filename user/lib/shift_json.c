// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * A shift back into its manifest form, as JSON: what `kshiftctl get -o json`
 * prints, and what ks_manifest_parse reads back to an equal shift (so every
 * value is written in a form the parser takes: endpoints as "ip:port",
 * "[ip6]:port" or a bare ip for port 0, a draining one as {address,
 * draining: true}, sources always with their length).
 *
 * Endpoints for one frontend port only (frontend_port set) come from
 * Kubernetes, where the port behind a Service depends on the Service port.
 * The manifest has no syntax for that, on purpose: users list endpoints for
 * every port. They are written resolved ("ip:port"), once per distinct
 * address and port, so a multi-port shift read back serves each of its
 * frontend ports from every listed address:port. That is a faithful view,
 * and only not a faithful copy when target ports differ per Service port.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>

#include "index.h"
#include "shift.h"

/*
 * Adds v to o under key, or appends it when key is NULL (o an array), and
 * returns v. When o or v is NULL (json-c out of memory) or the add fails, it
 * drops v, clears *ok and returns NULL, so every put under a missing
 * container fails too and the whole build is checked once, at its end.
 */
static struct json_object *put(struct json_object *o, const char *key, struct json_object *v,
			       bool *ok)
{
	if (!o || !v || (key ? json_object_object_add(o, key, v) : json_object_array_add(o, v))) {
		json_object_put(v);
		*ok = false;
		return NULL;
	}
	return v;
}

static struct json_object *ip_json(const struct ks_ip *ip)
{
	char buf[INET6_ADDRSTRLEN];

	return json_object_new_string(ks_ip_str(ip, buf, sizeof(buf)));
}

static struct json_object *endpoint_json(const struct ks_endpoint_spec *ep, bool *ok)
{
	char ip[INET6_ADDRSTRLEN], buf[INET6_ADDRSTRLEN + 8];
	struct json_object *o;

	ks_ip_str(&ep->ip, ip, sizeof(ip));
	if (!ep->port)
		snprintf(buf, sizeof(buf), "%s", ip);
	else if (ep->ip.family == KS_FAMILY_V6)
		snprintf(buf, sizeof(buf), "[%s]:%u", ip, ep->port);
	else
		snprintf(buf, sizeof(buf), "%s:%u", ip, ep->port);
	if (ep->state != KS_EP_TERMINATING)
		return json_object_new_string(buf);
	o = json_object_new_object();
	put(o, "address", json_object_new_string(buf), ok);
	put(o, "draining", json_object_new_boolean(1), ok);
	return o;
}

/* Whether an endpoint with ep's address and port was written already (the
 * same endpoint listed for another frontend port): seen indexes them, so a
 * backend of 50,000 endpoints is not compared pairwise. */
static bool listed_before(struct ks_index *seen, const struct ks_endpoint_spec *ep, bool *ok)
{
	uint8_t key[sizeof(ep->ip.addr) + sizeof(ep->port) + 1];

	memcpy(key, &ep->ip.addr, sizeof(ep->ip.addr));
	memcpy(key + sizeof(ep->ip.addr), &ep->port, sizeof(ep->port));
	key[sizeof(key) - 1] = ep->ip.family;
	if (ks_index_get(seen, key, sizeof(key)))
		return true;
	if (ks_index_put(seen, key, sizeof(key), (void *)1))
		*ok = false;
	return false;
}

static struct json_object *prefix_json(const struct ks_prefix *pfx)
{
	struct ks_ip ip = { .addr = pfx->addr, .family = pfx->family };
	char addr[INET6_ADDRSTRLEN], buf[INET6_ADDRSTRLEN + 4];

	snprintf(buf, sizeof(buf), "%s/%u", ks_ip_str(&ip, addr, sizeof(addr)), pfx->len);
	return json_object_new_string(buf);
}

struct json_object *ks_shift_to_json(const struct ks_shift *s)
{
	struct json_object *root, *meta, *spec, *fe, *list, *o, *srcs;
	bool ok = true;
	size_t i, j;

	root = json_object_new_object();
	put(root, "apiVersion", json_object_new_string(KS_API_VERSION), &ok);
	put(root, "kind", json_object_new_string(KS_KIND), &ok);

	meta = put(root, "metadata", json_object_new_object(), &ok);
	put(meta, "name", json_object_new_string(s->name), &ok);
	put(meta, "namespace", json_object_new_string(s->namespace), &ok);
	if (s->generation)
		put(meta, "generation", json_object_new_int64(s->generation), &ok);

	spec = put(root, "spec", json_object_new_object(), &ok);
	fe = put(spec, "frontend", json_object_new_object(), &ok);
	if (*s->frontend_service)
		put(fe, "service", json_object_new_string(s->frontend_service), &ok);
	list = put(fe, "addresses", json_object_new_array(), &ok);
	for (i = 0; i < s->nr_addresses; i++)
		put(list, NULL, ip_json(&s->addresses[i]), &ok);
	/* no ports: the frontend Service's, and an empty list would be refused */
	list = s->nr_ports ? put(fe, "ports", json_object_new_array(), &ok) : NULL;
	for (i = 0; i < s->nr_ports; i++) {
		o = put(list, NULL, json_object_new_object(), &ok);
		put(o, "port", json_object_new_int(s->ports[i].port), &ok);
		put(o, "protocol",
		    json_object_new_string(s->ports[i].proto == IPPROTO_UDP ? "UDP" : "TCP"), &ok);
	}

	list = put(spec, "backends", json_object_new_array(), &ok);
	for (i = 0; i < s->nr_backends; i++) {
		const struct ks_backend_spec *b = &s->backends[i];
		struct ks_index seen = {};
		struct json_object *eps;

		o = put(list, NULL, json_object_new_object(), &ok);
		put(o, "name", json_object_new_string(b->name), &ok);
		if (*b->service)
			put(o, "service", json_object_new_string(b->service), &ok);
		eps = put(o, "endpoints", json_object_new_array(), &ok);
		for (j = 0; j < b->nr_endpoints; j++)
			if (!listed_before(&seen, &b->endpoints[j], &ok))
				put(eps, NULL, endpoint_json(&b->endpoints[j], &ok), &ok);
		ks_index_destroy(&seen);
		put(o, "weight", json_object_new_int64(b->weight), &ok);
	}
	put(spec, "affinity",
	    json_object_new_string(s->affinity == KS_AFFINITY_CLIENT ? "client" : "connection"),
	    &ok);

	list = s->nr_rules ? put(spec, "rules", json_object_new_array(), &ok) : NULL;
	for (i = 0; i < s->nr_rules; i++) {
		o = put(list, NULL, json_object_new_object(), &ok);
		srcs = put(o, "sources", json_object_new_array(), &ok);
		for (j = 0; j < s->rules[i].nr_sources; j++)
			put(srcs, NULL, prefix_json(&s->rules[i].sources[j]), &ok);
		put(o, "backend", json_object_new_string(s->backends[s->rules[i].backend].name),
		    &ok);
	}

	if (s->mirror_backend >= 0) {
		o = put(spec, "mirror", json_object_new_object(), &ok);
		put(o, "backend", json_object_new_string(s->backends[s->mirror_backend].name), &ok);
		put(o, "percent", json_object_new_int64(s->mirror_percent), &ok);
	}

	if (!ok) {
		json_object_put(root);
		return NULL;
	}
	return root;
}
