// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Open connections, shares and frontends for get, top and /metrics. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include "conntrack.h"
#include "index.h"
#include "observe.h"

/* A walk's counts serve for 20 walks' time (a million flows take about a
 * second), so that counting never takes more than a twentieth of the
 * daemon's time, and for at least OPEN_CACHE_MIN_NS, so that one answer
 * (every backend of every shift) costs one walk; on a small table that is
 * short enough that an answer never misses a connection opened before the
 * question. */
#define OPEN_CACHE_MIN_NS 50000000ULL
#define OPEN_WALK_SHARE	  20

/* The last walk's counts, per (svc, backend) slot as in ks_stats, and per
 * (svc, endpoint) for the endpoints `get` lists. */
static struct {
	const struct ks_dp *dp;
	uint64_t at_ns, took_ns;
	uint32_t *open;
	uint32_t nr; /* services open covers: the dp's --max-services */
	struct ks_index by_ep; /* ep_key() -> count */
} cache;

/* (svc, endpoint) as bytes of their own: ks_endpoint may have padding. */
static size_t ep_key(uint32_t svc, const struct ks_addr *addr, uint8_t family, uint16_t port_be,
		     uint8_t key[23])
{
	memcpy(key, &svc, 4);
	memcpy(key + 4, addr, 16);
	memcpy(key + 20, &port_be, 2);
	key[22] = family;
	return 23;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int count_one(const struct ks_ct_flow *f, void *arg)
{
	uint32_t *open = arg;
	uint8_t key[23];
	uintptr_t n;
	size_t len;

	/* a FIN or a reset ends a connection as far as anyone waits on it */
	if (f->expired || f->state == KS_CT_CLOSED || f->state == KS_CT_CLOSING ||
	    f->svc >= cache.nr || f->backend >= KS_MAX_BACKENDS)
		return 0;
	open[f->svc * KS_STATS_PER_SVC + f->backend]++;
	len = ep_key(f->svc, &f->endpoint, f->family, htons(f->endpoint_port), key);
	n = (uintptr_t)ks_index_get(&cache.by_ep, key, len);
	return ks_index_put(&cache.by_ep, key, len, (void *)(n + 1));
}

static const uint32_t *open_counts(struct ks_dp *dp)
{
	uint64_t now = mono_ns();

	if (cache.open && cache.nr != dp->max_svcs) {
		free(cache.open);
		cache.open = NULL;
	}
	if (cache.open && cache.dp == dp &&
	    (now - cache.at_ns < OPEN_CACHE_MIN_NS ||
	     now - cache.at_ns < OPEN_WALK_SHARE * cache.took_ns))
		return cache.open;
	if (!cache.open)
		cache.open = calloc((size_t)dp->max_svcs * KS_STATS_PER_SVC, sizeof(uint32_t));
	if (!cache.open)
		return NULL;
	cache.nr = dp->max_svcs;
	memset(cache.open, 0, (size_t)cache.nr * KS_STATS_PER_SVC * sizeof(uint32_t));
	ks_index_destroy(&cache.by_ep);
	if (ks_ct_list(dp, UINT32_MAX, ks_ct_now(), count_one, cache.open)) {
		memset(cache.open, 0, (size_t)cache.nr * KS_STATS_PER_SVC * sizeof(uint32_t));
		ks_index_destroy(&cache.by_ep);
	}
	cache.dp = dp;
	cache.at_ns = mono_ns();
	cache.took_ns = cache.at_ns - now;
	return cache.open;
}

uint64_t ks_observe_open(struct ks_dp *dp, uint32_t svc, uint32_t b)
{
	const uint32_t *open;

	if (!dp || !dp->skel || svc >= dp->max_svcs || b >= KS_STATS_PER_SVC)
		return 0;
	open = open_counts(dp);
	return open ? open[svc * KS_STATS_PER_SVC + b] : 0;
}

uint64_t ks_observe_ep_open(struct ks_dp *dp, const struct ks_shift_state *st,
			    const struct ks_endpoint *ep)
{
	uint64_t n = 0;
	uint8_t key[23];
	size_t i;

	if (!dp || !dp->skel || !open_counts(dp))
		return 0;
	for (i = 0; i < st->nr_svcs; i++)
		n += (uintptr_t)ks_index_get(
			&cache.by_ep, key,
			ep_key(st->svcs[i].svc, &ep->addr, ep->family, ep->port, key));
	return n;
}

uint64_t ks_observe_shift_open(struct ks_shifts *t, const struct ks_shift_state *st, uint32_t b)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < st->nr_svcs; i++)
		n += ks_observe_open(t->dp, st->svcs[i].svc, b);
	return n;
}

void ks_observe_status(struct ks_shifts *t, const struct ks_shift_state *st,
		       struct json_object *doc, bool open)
{
	const struct ks_shift *s = &st->spec;
	struct json_object *status, *backends, *fes, *b;
	char addr[INET6_ADDRSTRLEN], fe[INET6_ADDRSTRLEN + 16];
	uint64_t sum = 0;
	size_t i, a, p;

	if (!doc || !json_object_object_get_ex(doc, "status", &status) ||
	    !json_object_object_get_ex(status, "backends", &backends))
		return;
	for (i = 0; i < s->nr_backends; i++)
		sum += s->backends[i].weight;
	for (i = 0; i < s->nr_backends && i < json_object_array_length(backends); i++) {
		b = json_object_array_get_idx(backends, i);
		json_object_object_add(
			b, "sharePercent",
			json_object_new_double(sum ? 100.0 * s->backends[i].weight / sum : 0.0));
		if (open)
			json_object_object_add(
				b, "openConnections",
				json_object_new_int64(ks_observe_shift_open(t, st, i)));
	}
	json_object_object_add(status, "observedWindow",
			       json_object_new_string("new flows since the last change"));
	fes = json_object_new_array();
	for (a = 0; a < s->nr_addresses; a++) {
		for (p = 0; p < s->nr_ports; p++) {
			ks_ip_str(&s->addresses[a], addr, sizeof(addr));
			snprintf(fe, sizeof(fe),
				 s->addresses[a].family == KS_FAMILY_V6 ? "[%s]:%u/%s" : "%s:%u/%s",
				 addr, s->ports[p].port,
				 s->ports[p].proto == IPPROTO_UDP ? "UDP" : "TCP");
			json_object_array_add(fes, json_object_new_string(fe));
		}
	}
	json_object_object_add(status, "frontends", fes);
}
