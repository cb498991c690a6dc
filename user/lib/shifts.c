// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The running set of TrafficShifts, programmed into the dataplane. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include "log.h"
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
	free(st->svcs);
	free(st);
}

void ks_shifts_destroy(struct ks_shifts *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		state_free(t->v[i]);
	free(t->v);
	memset(t, 0, sizeof(*t));
}

struct ks_shift_state *ks_shifts_find(struct ks_shifts *t, const char *ns, const char *name)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (!strcmp(t->v[i]->spec.name, name) && !strcmp(t->v[i]->spec.namespace, ns))
			return t->v[i];
	return NULL;
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
			out[n++] = (struct ks_svc_ref){ .port = s->ports[p], .family = families[f] };
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

/* Programs one service from the spec: each backend's endpoints of the
 * service's family, with the frontend port where an endpoint names none. */
static int program_svc(struct ks_dp *dp, const struct ks_shift *s, const struct ks_svc_ref *ref)
{
	struct ks_dp_backend b[KS_MAX_BACKENDS] = {};
	struct ks_endpoint *eps[KS_MAX_BACKENDS] = {};
	size_t i, j, k;
	int err = 0;

	for (i = 0; i < s->nr_backends; i++) {
		const struct ks_backend_spec *bs = &s->backends[i];

		b[i].weight = bs->weight;
		eps[i] = calloc(bs->nr_endpoints ? bs->nr_endpoints : 1, sizeof(*eps[i]));
		if (!eps[i]) {
			err = -ENOMEM;
			goto out;
		}
		for (j = 0; j < bs->nr_endpoints; j++) {
			const struct ks_endpoint_spec *es = &bs->endpoints[j];
			struct ks_endpoint ep = {
				.addr = es->ip.addr,
				.family = es->ip.family,
				.port = htons(es->port ? es->port : ref->port.port),
			};

			if (ep.family != ref->family)
				continue;
			for (k = 0; k < b[i].nr_eps && memcmp(&eps[i][k], &ep, sizeof(ep)); k++)
				;
			if (k == b[i].nr_eps)
				eps[i][b[i].nr_eps++] = ep;
		}
		b[i].eps = eps[i];
	}
	err = ks_dp_svc_set(dp, ref->svc, b, s->nr_backends,
			    s->affinity == KS_AFFINITY_CLIENT ? KS_SPLIT_CLIENT_AFFINITY : 0);
out:
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

/* Is the address still a frontend of any shift but `except`? */
static bool address_in_use(struct ks_shifts *t, const struct ks_ip *ip,
			   const struct ks_shift_state *except)
{
	size_t i, a;

	for (i = 0; i < t->n; i++) {
		if (t->v[i] == except)
			continue;
		for (a = 0; a < t->v[i]->spec.nr_addresses; a++)
			if (!memcmp(&t->v[i]->spec.addresses[a], ip, sizeof(*ip)))
				return true;
	}
	return false;
}

static bool has_frontend(const struct ks_shift *s, const struct ks_ip *ip, const struct ks_port *p)
{
	size_t a, q;

	for (a = 0; a < s->nr_addresses; a++) {
		if (memcmp(&s->addresses[a], ip, sizeof(*ip)))
			continue;
		if (!p)
			return true;
		for (q = 0; q < s->nr_ports; q++)
			if (s->ports[q].port == p->port && s->ports[q].proto == p->proto)
				return true;
	}
	return false;
}

static bool same_name(const struct ks_shift *a, const struct ks_shift *b)
{
	return !strcmp(a->name, b->name) && !strcmp(a->namespace, b->namespace);
}

/* Refuses s if it claims a frontend that o serves. */
static int check_pair(const struct ks_shift *s, const struct ks_shift *o, char *err, size_t errlen)
{
	char addr[INET6_ADDRSTRLEN];
	size_t a, p;

	for (a = 0; a < s->nr_addresses; a++) {
		for (p = 0; p < s->nr_ports; p++) {
			if (!has_frontend(o, &s->addresses[a], &s->ports[p]))
				continue;
			seterr(err, errlen,
			       "spec.frontend.addresses[%zu]: %s port %u/%s: already the frontend of "
			       "shift %s/%s",
			       a, ks_ip_str(&s->addresses[a], addr, sizeof(addr)), s->ports[p].port,
			       proto_name(s->ports[p].proto), o->namespace, o->name);
			return -EEXIST;
		}
	}
	return 0;
}

/* Refuses a frontend another shift already serves. */
static int check_conflicts(struct ks_shifts *t, const struct ks_shift *s,
			   const struct ks_shift_state *self, char *err, size_t errlen)
{
	size_t i;
	int ret;

	for (i = 0; i < t->n; i++) {
		if (t->v[i] == self)
			continue;
		ret = check_pair(s, &t->v[i]->spec, err, errlen);
		if (ret)
			return ret;
	}
	return 0;
}

int ks_shifts_check(struct ks_shifts *t, const struct ks_shift *batch, size_t n, char *err,
		    size_t errlen)
{
	size_t i, j, k;
	int ret;

	for (i = 0; i < n; i++) {
		for (j = 0; j < t->n; j++) {
			const struct ks_shift *o = &t->v[j]->spec;

			/* a running shift that the batch replaces does not count */
			for (k = 0; k < n && !same_name(&batch[k], o); k++)
				;
			if (k < n)
				continue;
			ret = check_pair(&batch[i], o, err, errlen);
			if (ret)
				return ret;
		}
		for (j = 0; j < i; j++) {
			ret = check_pair(&batch[i], &batch[j], err, errlen);
			if (ret)
				return ret;
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

		err = ks_dp_frontend_add(t->dp, &key, KS_MAX_SERVICES);
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

/* Removes the frontends of old that keep (may be NULL) does not have. */
static void del_frontends(struct ks_shifts *t, const struct ks_shift_state *old,
			  const struct ks_shift *keep)
{
	const struct ks_shift *s = &old->spec;
	size_t a, p;

	for (a = 0; a < s->nr_addresses; a++) {
		for (p = 0; p < s->nr_ports; p++) {
			struct ks_frontend_key key = frontend_key(&s->addresses[a], &s->ports[p]);

			if (!keep || !has_frontend(keep, &s->addresses[a], &s->ports[p]))
				ks_dp_frontend_del(t->dp, &key);
		}
		if ((!keep || !has_frontend(keep, &s->addresses[a], NULL)) &&
		    !address_in_use(t, &s->addresses[a], old)) {
			struct ks_frontend_key key = frontend_key(&s->addresses[a], NULL);

			ks_dp_frontend_del(t->dp, &key);
		}
	}
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
			seterr(err, errlen, "no room for another service (%d in use): %s",
			       KS_MAX_SERVICES, strerror(-ret));
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

	if (old) {
		del_frontends(t, old, shift);
		for (i = 0; i < old->nr_svcs; i++)
			if (!find_ref(refs, nr_refs, &old->svcs[i]))
				ks_dp_svc_delete(t->dp, old->svcs[i].svc);
		for (i = 0; i < t->n && t->v[i] != old; i++)
			;
		t->v[i] = st;
		state_free(old);
	} else {
		if (t->n == t->cap) {
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
		t->v[t->n++] = st;
	}
	st->svcs = refs;
	st->nr_svcs = nr_refs;
	snapshot(t, st);
	return 0;

fail:
	/* put back what was running: the old version's splits on reused
	 * services, and nothing of the new version's own */
	for (i = 0; refs && i < nr_refs; i++) {
		if (fresh[i]) {
			struct ks_shift_state tmp = { .spec = *shift, .svcs = &refs[i], .nr_svcs = 1 };

			del_frontends(t, &tmp, old ? &old->spec : NULL);
			ks_dp_svc_delete(t->dp, refs[i].svc);
		} else if (i < programmed && old) {
			program_svc(t->dp, &old->spec, &refs[i]);
		}
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
	del_frontends(t, st, NULL);
	for (i = 0; i < st->nr_svcs; i++)
		ks_dp_svc_delete(t->dp, st->svcs[i].svc);
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

struct json_object *ks_shifts_status(struct ks_shifts *t, const struct ks_shift_state *st)
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
		json_object_object_add(b, "name", json_object_new_string(st->spec.backends[i].name));
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
		json_object_array_add(backends, b);
	}
	counters_of(t, st, KS_STATS_NONE, &none);
	json_object_object_add(status, "rejectedFlows", json_object_new_int64(none.rejected));
	return doc;
}
