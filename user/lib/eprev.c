// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ks_eprev: for each endpoint, the frontends it serves, so that a flow's
 * first reply finds the flow's forward entry (bpf/lib/conntrack.h), which
 * is what lets a new flow cost one insert. An endpoint serves a frontend
 * through every backend and service that lists it, so each (endpoint,
 * frontend) pair is counted, and goes when its count does.
 *
 * The map grows before anything steers a flow by it (the dataplane links a
 * frontend before its key goes in, and a service's new endpoints before
 * the flip to them) and shrinks after. An entry that stays a moment too
 * long costs nothing: the datapath trusts a frontend it names only if a
 * live forward entry from the client to that frontend is steered to this
 * very endpoint.
 *
 * A frontend whose new flows the map cannot serve this way is told so by
 * KS_FE_REPLY_AT_ONCE in ks_frontends (its new flows insert the reply
 * entry at once): one of its endpoints serves another frontend too, where
 * only the reply entry's insert can find a clash between two half-open
 * flows, or could not be listed (more than KS_EPREV_MAX frontends, or no
 * room in the map). The flag stays until the frontend is added again:
 * erring that way costs an insert, never a flow.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <kshift/abi.h> /* before the skeleton, whose rodata uses its types */
#include "kshift.skel.h"
#include "eprev.h"
#include "index.h"

/* One frontend of an endpoint, and how many times it is linked. */
struct fe_ref {
	struct ks_eprev_fe fe;
	uint32_t refs;
};

/* An endpoint's frontends, in the order they came: the first
 * KS_EPREV_MAX are the map's. */
struct ep_fes {
	uint32_t n, cap;
	struct fe_ref *v;
};

static struct ks_eprev_key ep_key(const struct ks_endpoint *ep, uint8_t proto)
{
	struct ks_eprev_key k;

	memset(&k, 0, sizeof(k));
	k.addr = ep->addr;
	k.port = ep->port;
	k.family = ep->family;
	k.proto = proto;
	return k;
}

static int find(const struct ep_fes *e, const struct ks_frontend_key *fe)
{
	uint32_t i;

	for (i = 0; i < e->n; i++)
		if (e->v[i].fe.port == fe->port && !memcmp(&e->v[i].fe.addr, &fe->addr, sizeof(fe->addr)))
			return (int)i;
	return -1;
}

/* The map's entry for k, from e. */
static int write_entry(struct ks_dp *dp, const struct ks_eprev_key *k, const struct ep_fes *e)
{
	struct ks_eprev v;
	uint32_t i;

	memset(&v, 0, sizeof(v));
	v.nr = e->n < KS_EPREV_MAX ? e->n : KS_EPREV_MAX;
	for (i = 0; i < v.nr; i++)
		v.fe[i] = e->v[i].fe;
	return bpf_map_update_elem(bpf_map__fd(dp->skel->maps.ks_eprev), k, &v, BPF_ANY) ? -errno
											  : 0;
}

/* Adds flags to frontend key, if it is in ks_frontends. */
static void mark_key(struct ks_dp *dp, const struct ks_frontend_key *key, uint32_t flags)
{
	int fd = bpf_map__fd(dp->skel->maps.ks_frontends);
	struct ks_frontend v;

	if (bpf_map_lookup_elem(fd, key, &v) || (v.flags & flags) == flags)
		return;
	v.flags |= flags;
	bpf_map_update_elem(fd, key, &v, BPF_EXIST);
}

/* ... frontend f of endpoint k's protocol and family. */
static void mark(struct ks_dp *dp, const struct ks_eprev_key *k, const struct ks_eprev_fe *f,
		 uint32_t flags)
{
	struct ks_frontend_key key;

	memset(&key, 0, sizeof(key));
	key.addr = f->addr;
	key.port = f->port;
	key.proto = k->proto;
	key.family = k->family;
	mark_key(dp, &key, flags);
}

/* One link of fe to ep; the flags fe needs for it, or -ENOMEM. */
static int link_one(struct ks_dp *dp, const struct ks_frontend_key *fe,
		    const struct ks_endpoint *ep)
{
	struct ks_eprev_key k = ep_key(ep, fe->proto);
	struct ep_fes *e = ks_index_get(&dp->eprev, &k, sizeof(k));
	int pos, flags = 0;
	uint32_t i;

	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e || ks_index_put(&dp->eprev, &k, sizeof(k), e)) {
			free(e);
			return -ENOMEM;
		}
	}
	pos = find(e, fe);
	if (pos < 0) {
		if (e->n == e->cap) {
			uint32_t cap = e->cap ? 2 * e->cap : 2;
			struct fe_ref *v = realloc(e->v, cap * sizeof(*v));

			if (!v) {
				if (!e->n)
					free(ks_index_del(&dp->eprev, &k, sizeof(k)));
				return -ENOMEM;
			}
			e->v = v;
			e->cap = cap;
		}
		pos = (int)e->n++;
		memset(&e->v[pos], 0, sizeof(e->v[pos]));
		e->v[pos].fe.addr = fe->addr;
		e->v[pos].fe.port = fe->port;
		/* the others learn of the sharing before fe takes a flow */
		for (i = 0; e->n > 1 && i < e->n - 1; i++)
			mark(dp, &k, &e->v[i].fe, KS_FE_REPLY_AT_ONCE);
		if (pos >= KS_EPREV_MAX || write_entry(dp, &k, e))
			flags |= KS_FE_REPLY_AT_ONCE;
	} else if (pos >= KS_EPREV_MAX) {
		flags |= KS_FE_REPLY_AT_ONCE;
	}
	e->v[pos].refs++;
	if (e->n > 1)
		flags |= KS_FE_REPLY_AT_ONCE;
	return flags;
}

static void unlink_one(struct ks_dp *dp, const struct ks_frontend_key *fe,
		       const struct ks_endpoint *ep)
{
	struct ks_eprev_key k = ep_key(ep, fe->proto);
	struct ep_fes *e = ks_index_get(&dp->eprev, &k, sizeof(k));
	int pos = e ? find(e, fe) : -1;

	if (pos < 0 || --e->v[pos].refs)
		return;
	memmove(&e->v[pos], &e->v[pos + 1], (e->n - pos - 1) * sizeof(e->v[0]));
	e->n--;
	if (!e->n) {
		bpf_map_delete_elem(bpf_map__fd(dp->skel->maps.ks_eprev), &k);
		ks_index_del(&dp->eprev, &k, sizeof(k));
		free(e->v);
		free(e);
	} else if (pos < KS_EPREV_MAX) {
		write_entry(dp, &k, e);
	}
}

int ks_eprev_link(struct ks_dp *dp, const struct ks_frontend_key *fe, const struct ks_endpoint *eps,
		  uint32_t n)
{
	int flags = 0, f;
	uint32_t i;

	for (i = 0; i < n; i++) {
		f = link_one(dp, fe, &eps[i]);
		if (f < 0) {
			ks_eprev_unlink(dp, fe, eps, i);
			return f;
		}
		flags |= f;
	}
	if (flags)
		mark_key(dp, fe, flags);
	return flags;
}

void ks_eprev_unlink(struct ks_dp *dp, const struct ks_frontend_key *fe,
		     const struct ks_endpoint *eps, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		unlink_one(dp, fe, &eps[i]);
}

static int free_entry(const void *key, size_t len, void *value, void *arg)
{
	struct ep_fes *e = value;

	(void)key;
	(void)len;
	(void)arg;
	free(e->v);
	free(e);
	return 0;
}

void ks_eprev_destroy(struct ks_dp *dp)
{
	ks_index_foreach(&dp->eprev, free_entry, NULL);
	ks_index_destroy(&dp->eprev);
}
