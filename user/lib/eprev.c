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

/* An endpoint's frontends: how many, and the ones the map lists. A
 * frontend linked when the list was full stays off it (and marked), even
 * when a listed one goes: its flows insert their reply entries anyway. */
struct ep_fes {
	uint32_t n;
	uint32_t nr_listed;
	struct ks_eprev_fe listed[KS_EPREV_MAX];
};

/* dp->eprev_links key: one (endpoint, frontend) pair, counted. */
struct pair_key {
	struct ks_eprev_key ep;
	struct ks_eprev_fe fe;
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

static struct pair_key pair_key(const struct ks_eprev_key *ep, const struct ks_frontend_key *fe)
{
	struct pair_key k;

	memset(&k, 0, sizeof(k));
	k.ep = *ep;
	k.fe.addr = fe->addr;
	k.fe.port = fe->port;
	return k;
}

static int listed_at(const struct ep_fes *e, const struct ks_eprev_fe *fe)
{
	uint32_t i;

	for (i = 0; i < e->nr_listed; i++)
		if (!memcmp(&e->listed[i], fe, sizeof(*fe)))
			return (int)i;
	return -1;
}

/* The map's entry for k, from e: deleted when it lists none. */
static int write_entry(struct ks_dp *dp, const struct ks_eprev_key *k, const struct ep_fes *e)
{
	int fd = bpf_map__fd(dp->skel->maps.ks_eprev);
	struct ks_eprev v;

	if (!e->nr_listed)
		return bpf_map_delete_elem(fd, k) && errno != ENOENT ? -errno : 0;
	memset(&v, 0, sizeof(v));
	v.nr = e->nr_listed;
	memcpy(v.fe, e->listed, e->nr_listed * sizeof(v.fe[0]));
	return bpf_map_update_elem(fd, k, &v, BPF_ANY) ? -errno : 0;
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
	struct pair_key pk = pair_key(&k, fe);
	struct ep_fes *e = ks_index_get(&dp->eprev, &k, sizeof(k));
	uintptr_t refs = (uintptr_t)ks_index_get(&dp->eprev_links, &pk, sizeof(pk));
	uint32_t i;

	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e || ks_index_put(&dp->eprev, &k, sizeof(k), e)) {
			free(e);
			return -ENOMEM;
		}
	}
	if (ks_index_put(&dp->eprev_links, &pk, sizeof(pk), (void *)(refs + 1))) {
		if (!e->n)
			free(ks_index_del(&dp->eprev, &k, sizeof(k)));
		return -ENOMEM;
	}
	if (!refs) {
		e->n++;
		/* the first frontend learns of the sharing before fe takes a
		 * flow; later ones are marked as they come, here */
		for (i = 0; e->n == 2 && i < e->nr_listed; i++)
			mark(dp, &k, &e->listed[i], KS_FE_REPLY_AT_ONCE);
		if (e->nr_listed < KS_EPREV_MAX) {
			e->listed[e->nr_listed++] = pk.fe;
			if (write_entry(dp, &k, e))
				e->nr_listed--;
		}
	}
	return e->n > 1 || listed_at(e, &pk.fe) < 0 ? KS_FE_REPLY_AT_ONCE : 0;
}

static void unlink_one(struct ks_dp *dp, const struct ks_frontend_key *fe,
		       const struct ks_endpoint *ep)
{
	struct ks_eprev_key k = ep_key(ep, fe->proto);
	struct pair_key pk = pair_key(&k, fe);
	struct ep_fes *e = ks_index_get(&dp->eprev, &k, sizeof(k));
	uintptr_t refs = (uintptr_t)ks_index_get(&dp->eprev_links, &pk, sizeof(pk));
	int at;

	if (!e || !refs)
		return;
	if (--refs) {
		ks_index_put(&dp->eprev_links, &pk, sizeof(pk), (void *)refs); /* replaces */
		return;
	}
	ks_index_del(&dp->eprev_links, &pk, sizeof(pk));
	e->n--;
	at = listed_at(e, &pk.fe);
	if (at >= 0) {
		e->listed[at] = e->listed[--e->nr_listed];
		write_entry(dp, &k, e);
	}
	if (!e->n)
		free(ks_index_del(&dp->eprev, &k, sizeof(k)));
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
	(void)key;
	(void)len;
	(void)arg;
	free(value);
	return 0;
}

void ks_eprev_destroy(struct ks_dp *dp)
{
	ks_index_foreach(&dp->eprev, free_entry, NULL);
	ks_index_destroy(&dp->eprev);
	ks_index_destroy(&dp->eprev_links);
}
