// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The running set of TrafficShifts, programmed into the dataplane. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <bpf/libbpf.h>
#include <kshift/abi.h> /* before the skeleton, whose rodata uses its types */
#include "kshift.skel.h"
#include "health.h"
#include "log.h"
#include "maglev.h"
#include "observe.h"
#include "rules.h"
#include "shadow.h"
#include "shifts.h"

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void ks_shifts_init(struct ks_shifts *t, struct ks_dp *dp)
{
	memset(t, 0, sizeof(*t));
	t->dp = dp;
}

static void state_free(struct ks_shift_state *st)
{
	if (!st)
		return;
	ks_shift_free(&st->spec);
	free(st->source);
	free(st->saved);
	free(st->svcs);
	free(st);
}

/* Every change to st->spec goes through here first. */
static void spec_changes(struct ks_shift_state *st)
{
	free(st->saved);
	st->saved = NULL;
}

const char *ks_shifts_saved(struct ks_shift_state *st)
{
	struct json_object *j;

	if (st->saved)
		return st->saved;
	j = ks_shift_to_json(&st->spec);
	if (j)
		st->saved = strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
	json_object_put(j);
	return st->saved;
}

void ks_shifts_destroy(struct ks_shifts *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		state_free(t->v[i]);
	free(t->v);
	ks_index_destroy(&t->by_name);
	ks_index_destroy(&t->by_frontend);
	ks_index_destroy(&t->addr_refs);
	ks_ct_gc_destroy(&t->gc);
	memset(t, 0, sizeof(*t));
}

/* A frontend (or, with port 0, an address) as an index key: built field by
 * field on zeroed memory, since the index compares bytes. */
struct frontend_id {
	struct ks_addr addr;
	uint16_t port;
	uint8_t proto;
	uint8_t family;
};

static struct frontend_id frontend_id(const struct ks_ip *ip, const struct ks_port *port)
{
	struct frontend_id id;

	memset(&id, 0, sizeof(id));
	id.addr = ip->addr;
	id.family = ip->family;
	if (port) {
		id.port = port->port;
		id.proto = port->proto;
	}
	return id;
}

static size_t name_key(char *buf, size_t len, const char *ns, const char *name)
{
	return snprintf(buf, len, "%s/%s", ns, name);
}

struct ks_shift_state *ks_shifts_find(struct ks_shifts *t, const char *ns, const char *name)
{
	char key[2 * KS_NAME_LEN];

	return ks_index_get(&t->by_name, key, name_key(key, sizeof(key), ns, name));
}

const struct ks_shift_state *ks_shifts_frontend_owner(struct ks_shifts *t, const struct ks_ip *ip,
						     const struct ks_port *port)
{
	struct frontend_id id = frontend_id(ip, port);

	return ks_index_get(&t->by_frontend, &id, sizeof(id));
}

/* Removes key from ix if it still leads to st: a newer version of the shift
 * may have taken it over. */
static void unindex(struct ks_index *ix, const void *key, size_t len, struct ks_shift_state *st)
{
	if (ks_index_get(ix, key, len) == st)
		ks_index_del(ix, key, len);
}

/* Enters st in the indexes (add) or takes it out: by name, by frontend, and
 * in the count of shifts that use each address. The indexes only serve
 * lookups and conflict checks, so a failed insert (ENOMEM) is reported and
 * the dataplane left as it is. */
static void index_state(struct ks_shifts *t, struct ks_shift_state *st, bool add)
{
	const struct ks_shift *s = &st->spec;
	char key[2 * KS_NAME_LEN];
	size_t a, p, len = name_key(key, sizeof(key), s->namespace, s->name);
	struct frontend_id id;
	uintptr_t refs;
	int err = 0;

	if (add)
		err |= ks_index_put(&t->by_name, key, len, st);
	else
		unindex(&t->by_name, key, len, st);
	for (a = 0; a < s->nr_addresses; a++) {
		for (p = 0; p < s->nr_ports; p++) {
			id = frontend_id(&s->addresses[a], &s->ports[p]);
			if (add)
				err |= ks_index_put(&t->by_frontend, &id, sizeof(id), st);
			else
				unindex(&t->by_frontend, &id, sizeof(id), st);
		}
		id = frontend_id(&s->addresses[a], NULL);
		refs = (uintptr_t)ks_index_get(&t->addr_refs, &id, sizeof(id)) + (add ? 1 : -1);
		if (refs)
			err |= ks_index_put(&t->addr_refs, &id, sizeof(id), (void *)refs);
		else
			ks_index_del(&t->addr_refs, &id, sizeof(id));
	}
	if (err)
		pr_warn("%s: out of memory indexing shift %s/%s\n", __func__, s->namespace,
			s->name);
}

static const char *proto_name(uint8_t proto)
{
	return proto == IPPROTO_UDP ? "UDP" : "TCP";
}

static struct ks_frontend_key frontend_key(const struct ks_ip *ip, const struct ks_port *port)
{
	struct ks_frontend_key key = { .addr = ip->addr, .family = ip->family };

	if (port) {
		key.port = htons(port->port);
		key.proto = port->proto;
	}
	return key;
}

/* The dataplane services a shift needs: one per port and address family
 * among its frontend addresses. */
static size_t wanted_svcs(const struct ks_shift *s, struct ks_svc_ref *out)
{
	static const uint8_t families[] = { KS_FAMILY_V4, KS_FAMILY_V6 };
	size_t n = 0, f, a, p;

	for (f = 0; f < 2; f++) {
		for (a = 0; a < s->nr_addresses && s->addresses[a].family != families[f]; a++)
			;
		if (a == s->nr_addresses)
			continue;
		for (p = 0; p < s->nr_ports; p++)
			out[n++] =
				(struct ks_svc_ref){ .port = s->ports[p], .family = families[f] };
	}
	return n;
}

static struct ks_svc_ref *find_ref(struct ks_svc_ref *v, size_t n, const struct ks_svc_ref *want)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i].family == want->family && v[i].port.port == want->port.port &&
		    v[i].port.proto == want->port.proto)
			return &v[i];
	return NULL;
}

/* Whether endpoint es serves service ref: its family, and its frontend port
 * when it is listed for one port only. */
static bool ep_serves(const struct ks_endpoint_spec *es, const struct ks_svc_ref *ref)
{
	return es->ip.family == ref->family &&
	       (!es->frontend_port ||
		(es->frontend_port == ref->port.port &&
		 (!es->frontend_proto || es->frontend_proto == ref->port.proto)));
}

/* The split of one service and its source rules (user/lib/rules.h), which
 * go live together with one flip. */
static int program_split(struct ks_dp *dp, const struct ks_shift *s, const struct ks_svc_ref *ref,
			 const struct ks_dp_backend *b)
{
	struct ks_dp_rule *rules = NULL;
	size_t nr = 0, i, j, max = 0;
	int flags, err;

	for (i = 0; i < s->nr_rules; i++)
		max += s->rules[i].nr_sources;
	if (max && !(rules = calloc(max, sizeof(*rules))))
		return -ENOMEM;
	for (i = 0; i < s->nr_rules; i++) {
		for (j = 0; j < s->rules[i].nr_sources; j++) {
			const struct ks_prefix *p = &s->rules[i].sources[j];

			if (p->family == ref->family)
				rules[nr++] = (struct ks_dp_rule){ .addr = p->addr,
								   .family = p->family,
								   .len = p->len,
								   .backend = s->rules[i].backend };
		}
	}
	flags = ks_rules_stage(dp, ref->svc, rules, nr);
	free(rules);
	if (flags < 0)
		return flags;
	if (s->affinity == KS_AFFINITY_CLIENT)
		flags |= KS_SPLIT_CLIENT_AFFINITY;
	err = ks_dp_svc_set(dp, ref->svc, b, s->nr_backends, flags);
	if (err && nr)
		ks_rules_clear(dp, ref->svc, dp->svcs[ref->svc].gen ^ 1);
	return err;
}

/*
 * Programs one service from the spec: each backend's endpoints that serve
 * it, with the frontend port where an endpoint names none. New flows go to
 * a backend's ready endpoints; only when it has none do its terminating
 * ones take them (kube-proxy's rule: better a pod on its way out than a
 * reset). Endpoints left out of the ring keep their established flows,
 * which the connection table holds, and the replies of those just begun
 * find them (nr_draining in struct ks_dp_backend).
 */
static int program_svc(struct ks_dp *dp, const struct ks_shift *s, const struct ks_svc_ref *ref)
{
	struct ks_dp_backend b[KS_MAX_BACKENDS] = {};
	struct ks_endpoint *eps[KS_MAX_BACKENDS] = {};
	struct ks_index seen = {}; /* a backend's endpoints so far: linear in 100,000 */
	size_t i, j;
	int err = 0;

	for (i = 0; i < s->nr_backends; i++) {
		const struct ks_backend_spec *bs = &s->backends[i];
		uint8_t want = KS_EP_TERMINATING;

		b[i].weight = bs->weight;
		eps[i] = calloc(bs->nr_endpoints ? bs->nr_endpoints : 1, sizeof(*eps[i]));
		if (!eps[i]) {
			err = -ENOMEM;
			goto out;
		}
		for (j = 0; j < bs->nr_endpoints; j++)
			if (bs->endpoints[j].state == KS_EP_READY &&
			    ep_serves(&bs->endpoints[j], ref))
				want = KS_EP_READY;
		/* the ring's endpoints, then those that only keep their flows */
		for (j = 0; j < 2 * bs->nr_endpoints; j++) {
			const struct ks_endpoint_spec *es = &bs->endpoints[j % bs->nr_endpoints];
			bool ring = j < bs->nr_endpoints;
			struct ks_endpoint ep = {
				.addr = es->ip.addr,
				.family = es->ip.family,
				.port = htons(es->port ? es->port : ref->port.port),
			};

			if ((es->state == want) != ring || !ep_serves(es, ref) ||
			    ks_index_get(&seen, &ep, sizeof(ep)))
				continue;
			if (ks_index_put(&seen, &ep, sizeof(ep), (void *)1)) {
				err = -ENOMEM;
				goto out;
			}
			eps[i][b[i].nr_eps + b[i].nr_draining] = ep;
			if (ring)
				b[i].nr_eps++;
			else
				b[i].nr_draining++;
		}
		b[i].eps = eps[i];
		ks_index_destroy(&seen);
	}
	err = program_split(dp, s, ref, b);
	/* the mirror's shadow endpoints come from the split's rings */
	if (!err)
		err = ks_dp_mirror_set(dp, ref->svc, s->mirror_backend >= 0 ? s->mirror_percent : 0,
				       s->mirror_backend >= 0 ? s->mirror_backend : 0);
out:
	ks_index_destroy(&seen);
	for (i = 0; i < s->nr_backends; i++)
		free(eps[i]);
	return err;
}

static void counters_of(struct ks_shifts *t, const struct ks_shift_state *st, uint32_t backend,
			struct ks_counters *sum)
{
	struct ks_counters c;
	size_t i;

	memset(sum, 0, sizeof(*sum));
	for (i = 0; i < st->nr_svcs; i++) {
		if (ks_dp_stats(t->dp, st->svcs[i].svc, backend, &c))
			continue;
		sum->packets += c.packets;
		sum->bytes += c.bytes;
		sum->new_flows += c.new_flows;
		sum->rejected += c.rejected;
	}
}

static void snapshot(struct ks_shifts *t, struct ks_shift_state *st)
{
	struct ks_counters c;
	uint32_t b;

	for (b = 0; b < KS_MAX_BACKENDS; b++) {
		counters_of(t, st, b, &c);
		st->baseline_flows[b] = c.new_flows;
	}
}

/* How many indexed shifts have ip as a frontend address. */
static uintptr_t address_refs(struct ks_shifts *t, const struct ks_ip *ip)
{
	struct frontend_id id = frontend_id(ip, NULL);

	return (uintptr_t)ks_index_get(&t->addr_refs, &id, sizeof(id));
}

static bool same_ip(const struct ks_ip *a, const struct ks_ip *b)
{
	return a->family == b->family && !memcmp(&a->addr, &b->addr, sizeof(a->addr));
}

static bool has_frontend(const struct ks_shift *s, const struct ks_ip *ip, const struct ks_port *p)
{
	size_t a, q;

	for (a = 0; a < s->nr_addresses; a++) {
		if (!same_ip(&s->addresses[a], ip))
			continue;
		if (!p)
			return true;
		for (q = 0; q < s->nr_ports; q++)
			if (s->ports[q].port == p->port && s->ports[q].proto == p->proto)
				return true;
	}
	return false;
}

static int conflict(const struct ks_shift *s, size_t a, size_t p, const struct ks_shift *o,
		    char *err, size_t errlen)
{
	char addr[INET6_ADDRSTRLEN];

	seterr(err, errlen,
	       "spec.frontend.addresses[%zu]: %s port %u/%s: already the frontend of shift %s/%s",
	       a, ks_ip_str(&s->addresses[a], addr, sizeof(addr)), s->ports[p].port,
	       proto_name(s->ports[p].proto), o->namespace, o->name);
	return -EEXIST;
}

/* Refuses a frontend that a running shift other than self serves. */
static int check_conflicts(struct ks_shifts *t, const struct ks_shift *s,
			   const struct ks_shift_state *self, char *err, size_t errlen)
{
	const struct ks_shift_state *owner;
	struct frontend_id id;
	size_t a, p;

	for (a = 0; a < s->nr_addresses; a++) {
		for (p = 0; p < s->nr_ports; p++) {
			id = frontend_id(&s->addresses[a], &s->ports[p]);
			owner = ks_index_get(&t->by_frontend, &id, sizeof(id));
			if (owner && owner != self)
				return conflict(s, a, p, &owner->spec, err, errlen);
		}
	}
	return 0;
}

/* Points every frontend of s at its services; address-only keys mark the
 * addresses for the fragment policy. */
static int add_frontends(struct ks_shifts *t, const struct ks_shift *s,
			 const struct ks_svc_ref *refs, size_t nr_refs)
{
	size_t a, r;
	int err;

	for (a = 0; a < s->nr_addresses; a++) {
		struct ks_frontend_key key = frontend_key(&s->addresses[a], NULL);

		err = ks_dp_frontend_add(t->dp, &key, KS_SVC_NONE);
		if (err)
			return err;
		for (r = 0; r < nr_refs; r++) {
			if (refs[r].family != s->addresses[a].family)
				continue;
			key = frontend_key(&s->addresses[a], &refs[r].port);
			err = ks_dp_frontend_add(t->dp, &key, refs[r].svc);
			if (err)
				return err;
		}
	}
	return 0;
}

/* Removes the frontends of s that keep (may be NULL) does not have. An
 * address stays marked while another shift uses it; `indexed` says whether
 * s itself is among the shifts counted. */
static void del_frontends(struct ks_shifts *t, const struct ks_shift *s,
			  const struct ks_shift *keep, bool indexed)
{
	size_t a, p;

	for (a = 0; a < s->nr_addresses; a++) {
		for (p = 0; p < s->nr_ports; p++) {
			struct ks_frontend_key key = frontend_key(&s->addresses[a], &s->ports[p]);

			if (!keep || !has_frontend(keep, &s->addresses[a], &s->ports[p]))
				ks_dp_frontend_del(t->dp, &key);
		}
		if ((!keep || !has_frontend(keep, &s->addresses[a], NULL)) &&
		    address_refs(t, &s->addresses[a]) == indexed) {
			struct ks_frontend_key key = frontend_key(&s->addresses[a], NULL);

			ks_dp_frontend_del(t->dp, &key);
		}
	}
}

/* Endpoint es of a backend as service ref steers to it. */
static struct ks_endpoint dp_endpoint(const struct ks_endpoint_spec *es,
				      const struct ks_svc_ref *ref)
{
	return (struct ks_endpoint){
		.addr = es->ip.addr,
		.family = es->ip.family,
		.port = htons(es->port ? es->port : ref->port.port),
	};
}

/* An endpoint as a key of its own bytes: ks_endpoint may have padding. */
static size_t endpoint_key(const struct ks_endpoint *ep, uint8_t key[19])
{
	memcpy(key, &ep->addr, 16);
	memcpy(key + 16, &ep->port, 2);
	key[18] = ep->family;
	return 19;
}

/* The endpoints s lists for ref, indexed: a change to a shift of 50,000
 * endpoints checks each old one in O(1), not with a scan of the new. */
static int index_endpoints(const struct ks_shift *s, const struct ks_svc_ref *ref,
			   struct ks_index *listed)
{
	struct ks_endpoint ep;
	uint8_t key[19];
	size_t b, j;
	int err = 0;

	for (b = 0; b < s->nr_backends && !err; b++) {
		for (j = 0; j < s->backends[b].nr_endpoints && !err; j++) {
			if (!ep_serves(&s->backends[b].endpoints[j], ref))
				continue;
			ep = dp_endpoint(&s->backends[b].endpoints[j], ref);
			err = ks_index_put(listed, key, endpoint_key(&ep, key), (void *)1);
		}
	}
	return err;
}

/*
 * Queues for the collector the flows a change from old to now strands:
 * those of endpoints no longer listed, on services both versions have (a
 * draining endpoint is still listed, and keeps its flows), and every flow
 * of a service only the old version had. Their next packets are steered
 * anew: a UDP client with a fixed source port moves on at once.
 */
static void flush_stranded(struct ks_shifts *t, const struct ks_shift_state *old,
			   const struct ks_shift *now, const struct ks_svc_ref *refs,
			   size_t nr_refs)
{
	struct ks_index listed = {};
	const struct ks_svc_ref *r;
	struct ks_endpoint ep;
	uint8_t key[19];
	size_t i, b, j;
	int err = 0;

	for (i = 0; i < old->nr_svcs; i++) {
		r = &old->svcs[i];
		if (!now || !find_ref((struct ks_svc_ref *)refs, nr_refs, r)) {
			err |= ks_ct_gc_flush(&t->gc, r->svc, NULL);
			continue;
		}
		ks_index_destroy(&listed);
		if (index_endpoints(now, r, &listed)) {
			err = -ENOMEM;
			continue;
		}
		for (b = 0; b < old->spec.nr_backends; b++) {
			for (j = 0; j < old->spec.backends[b].nr_endpoints; j++) {
				if (!ep_serves(&old->spec.backends[b].endpoints[j], r))
					continue;
				ep = dp_endpoint(&old->spec.backends[b].endpoints[j], r);
				if (!ks_index_get(&listed, key, endpoint_key(&ep, key)))
					err |= ks_ct_gc_flush(&t->gc, r->svc, &ep);
			}
		}
	}
	ks_index_destroy(&listed);
	if (err)
		pr_warn("%s/%s: out of memory queueing the flows of removed endpoints\n",
			old->spec.namespace, old->spec.name);
}

int ks_shifts_apply(struct ks_shifts *t, const struct ks_shift *shift, const char *source,
		    char *err, size_t errlen)
{
	struct ks_shift_state *old = ks_shifts_find(t, shift->namespace, shift->name);
	struct ks_svc_ref *refs = NULL, *prev;
	struct ks_shift_state *st = NULL;
	size_t nr_refs = 0, i, programmed = 0;
	bool fresh[2 * 64] = {};
	int ret;

	ret = check_conflicts(t, shift, old, err, errlen);
	if (ret)
		return ret;
	if (2 * shift->nr_ports > sizeof(fresh) / sizeof(fresh[0])) {
		seterr(err, errlen, "spec.frontend.ports: %zu ports: at most %zu", shift->nr_ports,
		       sizeof(fresh) / sizeof(fresh[0]) / 2);
		return -E2BIG;
	}
	refs = calloc(2 * shift->nr_ports + 1, sizeof(*refs));
	st = calloc(1, sizeof(*st));
	if (!refs || !st || ks_shift_copy(&st->spec, shift) ||
	    !(st->source = strdup(source ? source : "api"))) {
		ret = -ENOMEM;
		seterr(err, errlen, "out of memory");
		goto fail;
	}
	nr_refs = wanted_svcs(shift, refs);
	if (!old && t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 64;
		struct ks_shift_state **v = realloc(t->v, cap * sizeof(*v));

		if (!v) {
			ret = -ENOMEM;
			seterr(err, errlen, "out of memory");
			goto fail;
		}
		t->v = v;
		t->cap = cap;
	}

	/* reuse the services of the old version where port and family match,
	 * so their established flows and counters carry on */
	for (i = 0; i < nr_refs; i++) {
		prev = old ? find_ref(old->svcs, old->nr_svcs, &refs[i]) : NULL;
		if (prev) {
			refs[i].svc = prev->svc;
			continue;
		}
		ret = ks_dp_svc_new(t->dp, &refs[i].svc);
		if (ret) {
			seterr(err, errlen,
			       "no room for another service (%u in use, --max-services): %s",
			       t->dp->max_svcs, strerror(-ret));
			goto fail;
		}
		fresh[i] = true;
	}
	for (programmed = 0; programmed < nr_refs; programmed++) {
		ret = program_svc(t->dp, shift, &refs[programmed]);
		if (ret) {
			seterr(err, errlen, "programming the dataplane: %s", strerror(-ret));
			goto fail;
		}
	}
	ret = add_frontends(t, shift, refs, nr_refs);
	if (ret) {
		seterr(err, errlen, "adding frontends: %s", strerror(-ret));
		goto fail;
	}

	/* the new version is live: retire what only the old one used */
	st->svcs = refs;
	st->nr_svcs = nr_refs;
	index_state(t, st, true);
	if (old) {
		flush_stranded(t, old, shift, refs, nr_refs);
		del_frontends(t, &old->spec, shift, true);
		for (i = 0; i < old->nr_svcs; i++)
			if (!find_ref(refs, nr_refs, &old->svcs[i])) {
				ks_dp_svc_delete(t->dp, old->svcs[i].svc);
				ks_rules_clear(t->dp, old->svcs[i].svc, -1);
			}
		index_state(t, old, false);
		for (i = 0; t->v[i] != old; i++)
			;
		t->v[i] = st;
		state_free(old);
	} else {
		t->v[t->n++] = st;
	}
	snapshot(t, st);
	return 0;

fail:
	/* put back what was running: the old version's splits on reused
	 * services, and nothing of the new version's own */
	del_frontends(t, shift, old ? &old->spec : NULL, false);
	for (i = 0; refs && i < nr_refs; i++) {
		if (fresh[i])
			ks_dp_svc_delete(t->dp, refs[i].svc);
		else if (i < programmed && old)
			program_svc(t->dp, &old->spec, &refs[i]);
	}
	if (old)
		add_frontends(t, &old->spec, old->svcs, old->nr_svcs);
	free(refs);
	state_free(st);
	return ret;
}

int ks_shifts_delete(struct ks_shifts *t, const char *ns, const char *name, char *err,
		     size_t errlen)
{
	struct ks_shift_state *st = ks_shifts_find(t, ns, name);
	size_t i;

	if (!st) {
		seterr(err, errlen, "%s/%s: no such shift", ns, name);
		return -ENOENT;
	}
	flush_stranded(t, st, NULL, NULL, 0);
	del_frontends(t, &st->spec, NULL, true);
	for (i = 0; i < st->nr_svcs; i++) {
		ks_dp_svc_delete(t->dp, st->svcs[i].svc);
		ks_rules_clear(t->dp, st->svcs[i].svc, -1);
	}
	index_state(t, st, false);
	for (i = 0; t->v[i] != st; i++)
		;
	t->v[i] = t->v[--t->n];
	state_free(st);
	return 0;
}

int ks_shifts_set_weights(struct ks_shifts *t, struct ks_shift_state *st, const char *const *names,
			  const uint32_t *weights, size_t n, char *err, size_t errlen)
{
	uint32_t old[KS_MAX_BACKENDS];
	size_t i;
	int b, ret = 0;

	for (i = 0; i < n; i++) {
		b = ks_shift_backend(&st->spec, names[i]);
		if (b < 0) {
			seterr(err, errlen, "%s: no such backend in shift %s/%s", names[i],
			       st->spec.namespace, st->spec.name);
			return -ENOENT;
		}
		if (weights[i] > KS_WEIGHT_MAX) {
			seterr(err, errlen, "%s: weight %u: must be 0..%u", names[i], weights[i],
			       KS_WEIGHT_MAX);
			return -ERANGE;
		}
	}
	spec_changes(st);
	for (i = 0; i < st->spec.nr_backends; i++)
		old[i] = st->spec.backends[i].weight;
	for (i = 0; i < n; i++)
		st->spec.backends[ks_shift_backend(&st->spec, names[i])].weight = weights[i];
	for (i = 0; i < st->nr_svcs && !ret; i++)
		ret = program_svc(t->dp, &st->spec, &st->svcs[i]);
	if (ret) {
		seterr(err, errlen, "programming the dataplane: %s", strerror(-ret));
		for (i = 0; i < st->spec.nr_backends; i++)
			st->spec.backends[i].weight = old[i];
		for (i = 0; i < st->nr_svcs; i++)
			program_svc(t->dp, &st->spec, &st->svcs[i]);
		return ret;
	}
	snapshot(t, st);
	return 0;
}

int ks_shifts_set_mirror(struct ks_shifts *t, struct ks_shift_state *st, const char *backend,
			 uint32_t percent, char *err, size_t errlen)
{
	int old_b = st->spec.mirror_backend, b = -1, ret = 0;
	uint32_t old_p = st->spec.mirror_percent;
	size_t i;

	if (backend) {
		b = ks_shift_backend(&st->spec, backend);
		if (b < 0) {
			seterr(err, errlen, "%s: no such backend in shift %s/%s", backend,
			       st->spec.namespace, st->spec.name);
			return -ENOENT;
		}
		if (percent > 100) {
			seterr(err, errlen, "percent %u: must be 0..100", percent);
			return -ERANGE;
		}
	}
	spec_changes(st);
	st->spec.mirror_backend = b;
	st->spec.mirror_percent = b >= 0 ? percent : 0;
	for (i = 0; i < st->nr_svcs && !ret; i++)
		ret = ks_dp_mirror_set(t->dp, st->svcs[i].svc, b >= 0 ? percent : 0,
				       b >= 0 ? b : 0);
	if (ret) {
		seterr(err, errlen, "programming the dataplane: %s", strerror(-ret));
		st->spec.mirror_backend = old_b;
		st->spec.mirror_percent = old_p;
		for (i = 0; i < st->nr_svcs; i++)
			ks_dp_mirror_set(t->dp, st->svcs[i].svc, old_b >= 0 ? old_p : 0,
					 old_b >= 0 ? old_b : 0);
	}
	return ret;
}

struct json_object *ks_shifts_status(struct ks_shifts *t, const struct ks_shift_state *st,
				     bool open)
{
	struct json_object *doc = ks_shift_to_json(&st->spec);
	struct json_object *status, *backends, *b;
	uint64_t since[KS_MAX_BACKENDS], total = 0;
	struct ks_counters c, none;
	size_t i;

	if (!doc)
		return NULL;
	status = json_object_new_object();
	backends = json_object_new_array();
	json_object_object_add(doc, "status", status);
	json_object_object_add(status, "source", json_object_new_string(st->source));
	json_object_object_add(status, "backends", backends);
	for (i = 0; i < st->spec.nr_backends; i++) {
		counters_of(t, st, i, &c);
		since[i] = c.new_flows - st->baseline_flows[i];
		total += since[i];
	}
	for (i = 0; i < st->spec.nr_backends; i++) {
		counters_of(t, st, i, &c);
		b = json_object_new_object();
		json_object_object_add(b, "name",
				       json_object_new_string(st->spec.backends[i].name));
		json_object_object_add(b, "weight",
				       json_object_new_int64(st->spec.backends[i].weight));
		json_object_object_add(b, "endpoints",
				       json_object_new_int64(st->spec.backends[i].nr_endpoints));
		json_object_object_add(b, "newFlows", json_object_new_int64(c.new_flows));
		json_object_object_add(b, "packets", json_object_new_int64(c.packets));
		json_object_object_add(b, "bytes", json_object_new_int64(c.bytes));
		json_object_object_add(b, "newFlowsSinceChange", json_object_new_int64(since[i]));
		json_object_object_add(
			b, "observedPercent",
			json_object_new_double(total ? 100.0 * since[i] / total : 0.0));
		/* per endpoint: passive health, open connections (health.h) */
		json_object_object_add(b, "endpointStatus",
				       ks_health_backend_json(t->dp, st, i, open));
		json_object_array_add(backends, b);
	}
	counters_of(t, st, KS_STATS_NONE, &none);
	json_object_object_add(status, "rejectedFlows", json_object_new_int64(none.rejected));
	if (st->spec.nr_rules)
		json_object_object_add(status, "rules", ks_rules_status(&st->spec));
	ks_observe_status(t, st, doc, open);
	return doc;
}

/* ---- batches: checked whole, applied in an order that works, or undone ---- */

/* Services the dataplane has room for (--max-services). */
static uint32_t max_services(const struct ks_dp *dp)
{
	return dp->max_svcs;
}

static uint64_t ranges_free(const struct ks_ranges *r)
{
	uint64_t n = 0;
	size_t i;

	/* held ranges count: they are free again within the grace period */
	for (i = 0; i < r->nr_free; i++)
		n += r->free[i].len;
	for (i = 0; i < r->nr_held; i++)
		n += r->held[i].len;
	return n;
}

static bool same_endpoint_list(const struct ks_backend_spec *a, const struct ks_backend_spec *b)
{
	size_t i;

	if (a->nr_endpoints != b->nr_endpoints)
		return false;
	for (i = 0; i < a->nr_endpoints; i++)
		if (!same_ip(&a->endpoints[i].ip, &b->endpoints[i].ip) ||
		    a->endpoints[i].port != b->endpoints[i].port)
			return false;
	return true;
}

struct batch_need {
	uint64_t svcs, eps, ring, frontends;
};

/* What applying s (replacing old, may be NULL) takes from the dataplane,
 * at most: new services, and endpoint and ring slots for every backend
 * whose endpoints change. An upper bound: every endpoint of the family is
 * counted, ready or not. New frontend keys are counted once per batch with
 * seen. */
static int shift_needs(struct ks_shifts *t, const struct ks_shift *s,
		       const struct ks_shift_state *old, struct ks_index *seen,
		       struct batch_need *need)
{
	struct ks_svc_ref refs[2 * 64 + 1], *prev;
	struct frontend_id id;
	size_t nr, i, b, e, a, p;
	uint32_t n, cur;

	if (s->nr_ports > 64)
		return 0; /* refused by ks_shifts_apply, which names the limit */
	nr = wanted_svcs(s, refs);
	for (i = 0; i < nr; i++) {
		const struct ks_dp_svc *svc = NULL;

		prev = old ? find_ref(old->svcs, old->nr_svcs, &refs[i]) : NULL;
		if (prev)
			svc = &t->dp->svcs[prev->svc];
		else
			need->svcs++;
		for (b = 0; b < s->nr_backends; b++) {
			if (prev && b < old->spec.nr_backends &&
			    same_endpoint_list(&s->backends[b], &old->spec.backends[b]))
				continue;
			for (e = 0, n = 0; e < s->backends[b].nr_endpoints; e++)
				n += s->backends[b].endpoints[e].ip.family == refs[i].family;
			cur = svc && b < svc->nr_backends ? svc->slots[b].slice.size : 0;
			need->eps += n;
			need->ring += ks_ring_size(n, cur);
		}
	}
	for (a = 0; a < s->nr_addresses; a++) {
		for (p = 0; p <= s->nr_ports; p++) {
			bool addr_only = p == s->nr_ports;

			id = frontend_id(&s->addresses[a], addr_only ? NULL : &s->ports[p]);
			if (ks_index_get(addr_only ? &t->addr_refs : &t->by_frontend, &id,
					 sizeof(id)) ||
			    ks_index_get(seen, &id, sizeof(id)))
				continue;
			if (ks_index_put(seen, &id, sizeof(id), (void *)1))
				return -ENOMEM;
			need->frontends++;
		}
	}
	return 0;
}

int ks_shifts_check_capacity(struct ks_shifts *t, const struct ks_change *c, size_t n, char *err,
			     size_t errlen)
{
	uint32_t max_svcs = max_services(t->dp), used = 0, i;
	struct batch_need need = {};
	uint64_t free_svcs, free_eps, free_ring, free_fe;
	struct ks_index seen = {};
	size_t k, applies = 0;
	int ret = 0;

	for (i = 0; i < max_svcs; i++)
		used += t->dp->svcs[i].used;
	free_svcs = max_svcs - used;
	for (k = 0; k < n && !ret; k++) {
		const struct ks_shift_state *old;

		if (!c[k].shift) {
			old = ks_shifts_find(t, c[k].ns, c[k].name);
			if (old)
				free_svcs += old->nr_svcs;
			continue;
		}
		applies++;
		old = ks_shifts_find(t, c[k].shift->namespace, c[k].shift->name);
		ret = shift_needs(t, c[k].shift, old, &seen, &need);
	}
	ks_index_destroy(&seen);
	if (ret) {
		seterr(err, errlen, "out of memory");
		return ret;
	}
	free_eps = ranges_free(&t->dp->ep_slots);
	free_ring = ranges_free(&t->dp->ring_slots);
	/* ks_frontends holds 4 keys per service */
	free_fe = 4ull * max_svcs;
	free_fe -= t->by_frontend.n + t->addr_refs.n < free_fe ? t->by_frontend.n + t->addr_refs.n
							       : free_fe;
	if (need.svcs > free_svcs) {
		seterr(err, errlen,
		       "%zu shift(s) need %llu more service(s) (one per frontend port and address "
		       "family); %llu of %u are available (--max-services)",
		       applies, (unsigned long long)need.svcs, (unsigned long long)free_svcs,
		       max_svcs);
		return -ENOSPC;
	}
	if (need.eps > free_eps) {
		seterr(err, errlen,
		       "%zu shift(s) need up to %llu endpoint slots; %llu of %u are free "
		       "(--max-endpoints)",
		       applies, (unsigned long long)need.eps, (unsigned long long)free_eps,
		       t->dp->ep_slots.size);
		return -ENOSPC;
	}
	if (need.ring > free_ring) {
		seterr(err, errlen,
		       "%zu shift(s) need up to %llu Maglev ring slots; %llu of %u are free",
		       applies, (unsigned long long)need.ring, (unsigned long long)free_ring,
		       t->dp->ring_slots.size);
		return -ENOSPC;
	}
	if (need.frontends > free_fe) {
		seterr(err, errlen,
		       "%zu shift(s) need %llu more frontend entries; %llu are free (4 per "
		       "service, --max-services)",
		       applies, (unsigned long long)need.frontends, (unsigned long long)free_fe);
		return -ENOSPC;
	}
	return 0;
}

static const char *change_ns(const struct ks_change *c)
{
	return c->shift ? c->shift->namespace : c->ns;
}

static const char *change_name(const struct ks_change *c)
{
	return c->shift ? c->shift->name : c->name;
}

int ks_shifts_check_batch(struct ks_shifts *t, const struct ks_change *c, size_t n, char *err,
			  size_t errlen)
{
	struct ks_index names = {}, claimed = {};
	const struct ks_shift_state *owner;
	const struct ks_shift *other;
	char key[2 * KS_NAME_LEN];
	struct frontend_id id;
	size_t i, a, p, len;
	int ret = 0;

	/* the end state: names once each; deleted ones must exist */
	for (i = 0; i < n && !ret; i++) {
		len = name_key(key, sizeof(key), change_ns(&c[i]), change_name(&c[i]));
		if (ks_index_get(&names, key, len)) {
			seterr(err, errlen, "%s: named twice in one change", key);
			ret = -EINVAL;
		} else if (!c[i].shift && !ks_shifts_find(t, c[i].ns, c[i].name)) {
			seterr(err, errlen, "%s: no such shift", key);
			ret = -ENOENT;
		} else {
			ret = ks_index_put(&names, key, len, (void *)&c[i]);
		}
	}
	/* every endpoint and rule of a family some frontend address has */
	for (i = 0; i < n && !ret; i++)
		if (c[i].shift)
			ret = ks_shift_check_families(c[i].shift, err, errlen);
	/* every frontend served by one shift: running shifts the batch
	 * replaces or deletes do not count, whatever the batch's order */
	for (i = 0; i < n && !ret; i++) {
		const struct ks_shift *s = c[i].shift;

		for (a = 0; s && a < s->nr_addresses && !ret; a++) {
			for (p = 0; p < s->nr_ports && !ret; p++) {
				id = frontend_id(&s->addresses[a], &s->ports[p]);
				owner = ks_index_get(&t->by_frontend, &id, sizeof(id));
				if (owner &&
				    !ks_index_get(&names, key,
						  name_key(key, sizeof(key), owner->spec.namespace,
							   owner->spec.name)))
					ret = conflict(s, a, p, &owner->spec, err, errlen);
				other = ks_index_get(&claimed, &id, sizeof(id));
				if (!ret && other)
					ret = conflict(s, a, p, other, err, errlen);
				if (!ret)
					ret = ks_index_put(&claimed, &id, sizeof(id), (void *)s);
			}
		}
	}
	if (ret == -ENOMEM)
		seterr(err, errlen, "out of memory");
	ks_index_destroy(&names);
	ks_index_destroy(&claimed);
	if (!ret)
		ret = ks_shifts_check_capacity(t, c, n, err, errlen);
	return ret;
}

/* What one step of a batch replaced, to put it back. */
struct undo {
	char ns[KS_NAME_LEN], name[KS_NAME_LEN];
	bool had_old;
	struct ks_shift old; /* with had_old */
	char *old_source;
};

static int journal(struct undo **v, size_t *nr, struct ks_shifts *t, const char *ns,
		   const char *name)
{
	struct ks_shift_state *st = ks_shifts_find(t, ns, name);
	struct undo *u = &(*v)[(*nr)];

	memset(u, 0, sizeof(*u));
	snprintf(u->ns, sizeof(u->ns), "%s", ns);
	snprintf(u->name, sizeof(u->name), "%s", name);
	if (st) {
		if (ks_shift_copy(&u->old, &st->spec))
			return -ENOMEM;
		u->old_source = strdup(st->source);
		if (!u->old_source) {
			ks_shift_free(&u->old);
			return -ENOMEM;
		}
		u->had_old = true;
	}
	(*nr)++;
	return 0;
}

static void undo_free(struct undo *v, size_t nr)
{
	size_t i;

	for (i = 0; i < nr; i++) {
		if (v[i].had_old)
			ks_shift_free(&v[i].old);
		free(v[i].old_source);
	}
	free(v);
}

/* Puts back, newest first, what the steps in v changed. */
static void roll_back(struct ks_shifts *t, struct undo *v, size_t nr)
{
	char err[KS_ERR_LEN];
	size_t i;

	for (i = nr; i-- > 0;) {
		struct undo *u = &v[i];
		int ret;

		if (u->had_old)
			ret = ks_shifts_apply(t, &u->old, u->old_source, err, sizeof(err));
		else if (ks_shifts_find(t, u->ns, u->name))
			ret = ks_shifts_delete(t, u->ns, u->name, err, sizeof(err));
		else
			ret = 0;
		if (ret)
			pr_warn("rolling back %s/%s: %s\n", u->ns, u->name, err);
	}
}

struct ks_commit {
	struct ks_shifts *t;
	const struct ks_change *c;
	size_t n;
	struct undo *undo;
	size_t nr_undo;
	size_t *pending;
	size_t nr_pending;
	size_t next;	 /* deletions: the next change to look at */
	bool deletions;	 /* still deleting */
	size_t pass_pos; /* applies: position in the current pass */
	size_t kept;	 /* applies: pending entries kept for the next pass */
	bool progress;	 /* applies: the current pass applied something */
	char err[KS_ERR_LEN];
};

void ks_shifts_commit_free(struct ks_commit *cm)
{
	if (!cm)
		return;
	if (cm->undo)
		undo_free(cm->undo, cm->nr_undo);
	free(cm->pending);
	free(cm);
}

const char *ks_shifts_commit_error(const struct ks_commit *cm)
{
	return cm->err;
}

int ks_shifts_commit_start(struct ks_shifts *t, const struct ks_change *c, size_t n,
			   struct ks_commit **out, char *err, size_t errlen)
{
	struct ks_commit *cm = calloc(1, sizeof(*cm));
	int ret;

	*out = NULL;
	if (cm) {
		cm->undo = calloc(2 * n + 1, sizeof(*cm->undo));
		cm->pending = calloc(n + 1, sizeof(*cm->pending));
	}
	if (!cm || !cm->undo || !cm->pending) {
		ks_shifts_commit_free(cm);
		seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	ret = ks_shifts_check_batch(t, c, n, err, errlen);
	if (ret) {
		ks_shifts_commit_free(cm);
		return ret;
	}
	cm->t = t;
	cm->c = c;
	cm->n = n;
	cm->deletions = true;
	*out = cm;
	return 0;
}

/* One step that failed: undo what the commit did, keep why. */
static int commit_fail(struct ks_commit *cm, int ret)
{
	if (ret == -ENOMEM && !cm->err[0])
		seterr(cm->err, sizeof(cm->err), "out of memory");
	roll_back(cm->t, cm->undo, cm->nr_undo);
	return ret;
}

int ks_shifts_commit_step(struct ks_commit *cm, size_t budget)
{
	struct ks_shifts *t = cm->t;
	const struct ks_change *c = cm->c;
	char scratch[KS_ERR_LEN];
	size_t i;
	int ret;

	/* deletions first: they only free frontends and room */
	while (cm->deletions && cm->next < cm->n) {
		i = cm->next++;
		if (c[i].shift) {
			cm->pending[cm->nr_pending++] = i;
			continue;
		}
		if (!budget--)
			return (cm->next--, -EINPROGRESS);
		ret = journal(&cm->undo, &cm->nr_undo, t, c[i].ns, c[i].name);
		if (!ret)
			ret = ks_shifts_delete(t, c[i].ns, c[i].name, cm->err, sizeof(cm->err));
		if (ret)
			return commit_fail(cm, ret);
	}
	cm->deletions = false;
	/* then every shift whose frontends are free by now; a frontend moving
	 * from one shift of the batch to another waits for the first to let
	 * go of it. A cycle (two shifts swapping frontends) is broken by
	 * taking one of them down for the moment. */
	while (cm->nr_pending) {
		for (; cm->pass_pos < cm->nr_pending; cm->pass_pos++) {
			const struct ks_change *ch = &c[cm->pending[cm->pass_pos]];
			struct ks_shift_state *old =
				ks_shifts_find(t, ch->shift->namespace, ch->shift->name);

			if (check_conflicts(t, ch->shift, old, scratch, sizeof(scratch))) {
				cm->pending[cm->kept++] = cm->pending[cm->pass_pos];
				continue;
			}
			if (!budget--)
				return -EINPROGRESS;
			ret = journal(&cm->undo, &cm->nr_undo, t, ch->shift->namespace,
				      ch->shift->name);
			if (!ret)
				ret = ks_shifts_apply(t, ch->shift, ch->source, cm->err,
						      sizeof(cm->err));
			if (ret) {
				char what[KS_ERR_LEN];

				snprintf(what, sizeof(what), "%s", cm->err);
				seterr(cm->err, sizeof(cm->err),
				       "%s/%s: %s%s; nothing of the change was kept",
				       ch->shift->namespace, ch->shift->name, what,
				       ret == -ENOSPC ? " (a backend's endpoint and ring slots are "
							"one run: the free ones are scattered, or "
							"held for a second after a change)"
						      : "");
				return commit_fail(cm, ret);
			}
			cm->progress = true;
		}
		/* the end of a pass */
		cm->nr_pending = cm->kept;
		cm->kept = 0;
		cm->pass_pos = 0;
		if (cm->progress || !cm->nr_pending) {
			cm->progress = false;
			continue;
		}
		for (i = 0; i < cm->nr_pending; i++) {
			const struct ks_shift *sh = c[cm->pending[i]].shift;

			if (!ks_shifts_find(t, sh->namespace, sh->name))
				continue;
			ret = journal(&cm->undo, &cm->nr_undo, t, sh->namespace, sh->name);
			if (!ret)
				ret = ks_shifts_delete(t, sh->namespace, sh->name, cm->err,
						       sizeof(cm->err));
			if (ret)
				return commit_fail(cm, ret);
			break;
		}
		if (i == cm->nr_pending) {
			/* cannot happen after the check: say so rather than spin */
			seterr(cm->err, sizeof(cm->err),
			       "%s/%s: frontend still taken; nothing of the change was kept",
			       c[cm->pending[0]].shift->namespace, c[cm->pending[0]].shift->name);
			return commit_fail(cm, -EEXIST);
		}
	}
	return 0;
}

int ks_shifts_commit(struct ks_shifts *t, const struct ks_change *c, size_t n, char *err,
		     size_t errlen)
{
	struct ks_commit *cm;
	int ret;

	ret = ks_shifts_commit_start(t, c, n, &cm, err, errlen);
	if (ret)
		return ret;
	ret = ks_shifts_commit_step(cm, SIZE_MAX);
	if (ret)
		seterr(err, errlen, "%s", cm->err);
	ks_shifts_commit_free(cm);
	return ret;
}

/* ---- the flows of shifts, for kshiftctl conns ---- */

struct conns_walk {
	struct ks_index by_svc; /* svc id -> its shift's state */
	struct json_object *items;
	size_t max, total;
};

static const char *endpoint_str(uint8_t family, const struct ks_addr *a, uint16_t port, char *buf,
				size_t len)
{
	struct ks_ip ip = { .addr = *a, .family = family };
	char addr[INET6_ADDRSTRLEN];

	ks_ip_str(&ip, addr, sizeof(addr));
	snprintf(buf, len, family == KS_FAMILY_V6 ? "[%s]:%u" : "%s:%u", addr, port);
	return buf;
}

static int conn_item(const struct ks_ct_flow *f, void *arg)
{
	struct conns_walk *w = arg;
	const struct ks_shift_state *st = ks_index_get(&w->by_svc, &f->svc, sizeof(f->svc));
	char buf[INET6_ADDRSTRLEN + 8];
	struct json_object *o;

	if (!st || f->expired)
		return 0;
	if (w->total++ >= w->max)
		return 0;
	o = json_object_new_object();
	json_object_object_add(o, "namespace", json_object_new_string(st->spec.namespace));
	json_object_object_add(o, "shift", json_object_new_string(st->spec.name));
	json_object_object_add(o, "protocol",
			       json_object_new_string(f->proto == IPPROTO_UDP ? "UDP" : "TCP"));
	json_object_object_add(o, "client",
			       json_object_new_string(endpoint_str(f->family, &f->client,
								   f->client_port, buf,
								   sizeof(buf))));
	json_object_object_add(o, "frontend",
			       json_object_new_string(endpoint_str(f->family, &f->frontend,
								   f->frontend_port, buf,
								   sizeof(buf))));
	json_object_object_add(o, "endpoint",
			       json_object_new_string(endpoint_str(f->family, &f->endpoint,
								   f->endpoint_port, buf,
								   sizeof(buf))));
	json_object_object_add(o, "backend",
			       json_object_new_string(f->backend < st->spec.nr_backends
							      ? st->spec.backends[f->backend].name
							      : "?"));
	json_object_object_add(o, "state", json_object_new_string(ks_ct_state_name(f->state)));
	json_object_object_add(o, "idleSeconds",
			       json_object_new_double((double)f->idle_ns / 1e9));
	json_object_array_add(w->items, o);
	return 0;
}

/* Indexes the services of the shifts named (NULL: any) by id, each to its
 * shift's state. */
static int svcs_of(struct ks_shifts *t, const char *ns, const char *name, struct ks_index *svcs)
{
	size_t i, j;
	int err = 0;

	for (i = 0; i < t->n && !err; i++) {
		const struct ks_shift_state *st = t->v[i];

		if ((ns && strcmp(ns, st->spec.namespace)) || (name && strcmp(name, st->spec.name)))
			continue;
		for (j = 0; j < st->nr_svcs && !err; j++)
			err = ks_index_put(svcs, &st->svcs[j].svc, sizeof(st->svcs[j].svc),
					   (void *)st);
	}
	return err;
}

struct json_object *ks_shifts_conns(struct ks_shifts *t, const char *ns, const char *name,
				    size_t max, size_t *total)
{
	struct conns_walk w = { .items = json_object_new_array(), .max = max };
	int err = svcs_of(t, ns, name, &w.by_svc);

	/* one walk of the table for all of them */
	if (!err && w.by_svc.n)
		err = ks_ct_list(t->dp, UINT32_MAX, ks_ct_now(), conn_item, &w);
	ks_index_destroy(&w.by_svc);
	if (err) {
		json_object_put(w.items);
		return NULL;
	}
	*total = w.total;
	return w.items;
}

long long ks_shifts_flush_conns(struct ks_shifts *t, const char *ns, const char *name)
{
	struct ks_index svcs = {};
	int n;

	if (!ns && !name)
		return ks_ct_flush_all(t->dp);
	n = svcs_of(t, ns, name, &svcs);
	if (!n && svcs.n)
		n = ks_ct_flush_svcs(t->dp, &svcs);
	ks_index_destroy(&svcs);
	return n;
}
